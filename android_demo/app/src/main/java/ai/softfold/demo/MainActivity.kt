package ai.softfold.demo

import android.app.Activity
import android.os.Bundle
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.ScrollView
import android.widget.TextView
import java.io.File

/**
 * One chat screen over the bundle pushed to <external files dir>/bundle (see android_demo/README.md).
 * Android-only: everything else is plain Kotlin (ChatSession and what it calls), tested on the host.
 * Rotation does not recreate it (configChanges in AndroidManifest.xml), so the model loads once.
 * `turns` is read and changed on the UI thread only; the worker gets a copy.
 */
class MainActivity : Activity() {
    private val session = ChatSession(post = { runOnUiThread(it) })
    private val turns = mutableListOf<PromptFormat.Turn>()
    private var generating = false

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val bundleDir = File(getExternalFilesDir(null), "bundle")
        val badge = TextView(this).apply { text = "Checking $bundleDir …" }
        val status = TextView(this)
        val transcript = TextView(this).apply { setTextIsSelectable(true) }
        val input = EditText(this).apply { hint = "Message" }
        val send = Button(this).apply { text = "Send"; isEnabled = false }
        setContentView(LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            setPadding(24, 24, 24, 24)
            addView(badge)
            addView(ScrollView(context).apply { addView(transcript) }, LinearLayout.LayoutParams(-1, 0, 1f))
            addView(status)
            addView(input)
            addView(send)
        })
        session.open(bundleDir) { opened ->
            when (opened) {
                is ChatSession.Opened.Failed -> badge.text = "No usable bundle in $bundleDir: ${opened.reason}"
                is ChatSession.Opened.Ready -> {
                    badge.text = opened.manifest.badge()
                    send.isEnabled = true
                }
            }
        }
        send.setOnClickListener {
            if (generating) {
                session.stop()
                return@setOnClickListener
            }
            val message = input.text.toString().trim()
            if (message.isEmpty()) return@setOnClickListener
            input.setText("")
            turns += PromptFormat.Turn(fromUser = true, text = message)
            transcript.append("\n> $message\n")
            generating = true
            send.text = "Stop"
            session.send(turns.toList(), MAX_NEW_TOKENS, onText = { transcript.append(it) }) { answer ->
                generating = false
                send.text = "Send"
                when (answer) {
                    is ChatSession.Answer.Done -> {
                        turns += PromptFormat.Turn(fromUser = false, text = answer.reply.text)
                        val trimmed = if (answer.droppedTurns > 0) " · ${answer.droppedTurns} old turns left out" else ""
                        status.text = "%d tokens · %.1f tokens/s%s".format(
                            answer.reply.newTokens, answer.reply.tokensPerSecond, trimmed)
                    }
                    is ChatSession.Answer.Failed -> {
                        turns.removeAt(turns.lastIndex)  // the message got no reply: leave it out of the context
                        status.text = "Failed: ${answer.reason}"
                    }
                }
            }
        }
    }

    override fun onDestroy() {
        session.close()  // stops a running reply; the engine closes on the worker after generate returns
        super.onDestroy()
    }

    companion object {
        const val MAX_NEW_TOKENS = 256
    }
}
