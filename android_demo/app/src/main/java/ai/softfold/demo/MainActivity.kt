package ai.softfold.demo

import android.app.Activity
import android.os.Bundle
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.ScrollView
import android.widget.TextView
import java.io.File
import kotlin.concurrent.thread

/** One chat screen over the bundle pushed to <external files dir>/bundle (see ../../README.md). */
class MainActivity : Activity() {
    private lateinit var engine: ChatEngine
    private lateinit var manifest: BundleManifest
    private val turns = mutableListOf<PromptFormat.Turn>()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val bundleDir = File(getExternalFilesDir(null), "bundle")
        val badge = TextView(this)
        val speed = TextView(this)
        val transcript = TextView(this).apply { setTextIsSelectable(true) }
        val input = EditText(this).apply { hint = "Message" }
        val send = Button(this).apply { text = "Send" }
        setContentView(LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            setPadding(24, 24, 24, 24)
            addView(badge)
            addView(ScrollView(context).apply { addView(transcript) }, LinearLayout.LayoutParams(-1, 0, 1f))
            addView(speed)
            addView(input)
            addView(send)
        })
        try {
            manifest = BundleManifest.read(bundleDir)
            engine = ChatEngine.open(bundleDir, manifest)
            badge.text = manifest.badge()
        } catch (e: Exception) {
            badge.text = "No usable bundle in $bundleDir: ${e.message}"
            send.isEnabled = false
            return
        }
        send.setOnClickListener {
            val message = input.text.toString().trim()
            if (message.isEmpty()) return@setOnClickListener
            input.setText("")
            send.isEnabled = false
            turns += PromptFormat.Turn(fromUser = true, text = message)
            transcript.append("\n> $message\n")
            val prompt = manifest.prompt.render(turns)
            thread {
                val reply = engine.generate(prompt, MAX_NEW_TOKENS) { piece -> runOnUiThread { transcript.append(piece) } }
                turns += PromptFormat.Turn(fromUser = false, text = reply.text)
                runOnUiThread {
                    speed.text = "%d tokens · %.1f tokens/s".format(reply.newTokens, reply.tokensPerSecond)
                    send.isEnabled = true
                }
            }
        }
    }

    override fun onDestroy() {
        if (::engine.isInitialized) engine.close()
        super.onDestroy()
    }

    companion object {
        const val MAX_NEW_TOKENS = 256
    }
}
