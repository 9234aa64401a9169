package ai.softfold.demo

import java.io.File
import java.util.concurrent.CountDownLatch
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit

/**
 * ChatSession's threading on a real bundle, with a scripted engine in place of the native one (the
 * stubs cannot run): close() waits for a running generate, a failing generate is an answer, not a
 * dead worker, and a rejected bundle never reaches the engine.
 */
class SessionTests(private val fixtures: Fixtures) {
    fun all() = listOf(
        HostTest("close during generate stops it, then closes the engine after it returns") { closeWaits() },
        HostTest("a failing generate becomes an answer; the next message works") { failureIsAnAnswer() },
        HostTest("a rejected bundle is reported and no engine is opened") { rejectedNotOpened() },
    )

    /** Generates "a", "b", ... until stopped or [limit] pieces; records how it was used. */
    private class ScriptedEngine(private val failFirst: Boolean = false, private val limit: Int = 1000) : ChatEngine {
        val events = LinkedBlockingQueue<String>()
        val started = CountDownLatch(1)
        @Volatile private var stopped = false
        @Volatile private var generating = false
        private var calls = 0

        override fun countTokens(text: String) = text.length / 4
        override fun generate(prompt: String, maxNewTokens: Int, onText: (String) -> Unit): Reply {
            calls += 1
            if (failFirst && calls == 1) throw IllegalStateException("native failure")
            generating = true
            started.countDown()
            var n = 0
            while (!stopped && n < minOf(limit, maxNewTokens)) {
                onText("${'a' + n % 26}")
                n += 1
                Thread.sleep(20)
            }
            generating = false
            events.add("generate returned")
            return Reply("x".repeat(n), n, 1.0)
        }
        override fun stop() { events.add("stop"); stopped = true }
        override fun close() { events.add(if (generating) "close DURING generate" else "close") }
    }

    private fun <T> await(queue: LinkedBlockingQueue<T>): T = checkNotNull(queue.poll(10, TimeUnit.SECONDS)) { "timed out" }

    private fun session(engine: ChatEngine) = ChatSession(post = { it.run() }, openEngine = { engine })

    private fun open(session: ChatSession, dir: File): ChatSession.Opened {
        val opened = LinkedBlockingQueue<ChatSession.Opened>()
        session.open(dir) { opened.add(it) }
        return await(opened)
    }

    private fun closeWaits() {
        val engine = ScriptedEngine()
        val session = session(engine)
        check(open(session, fixtures.bundle("executorch-prefix-kv")) is ChatSession.Opened.Ready) { "not opened" }
        session.send(listOf(PromptFormat.Turn(true, "Hi")), 64, {}) {}
        check(engine.started.await(10, TimeUnit.SECONDS)) { "generate never started" }
        session.close()
        checkEquals("stop", await(engine.events), "first event")
        checkEquals("generate returned", await(engine.events), "second event")
        checkEquals("close", await(engine.events), "third event")
    }

    private fun failureIsAnAnswer() {
        val engine = ScriptedEngine(failFirst = true, limit = 3)
        val session = session(engine)
        open(session, fixtures.bundle("onnx-prefix-kv"))
        val answers = LinkedBlockingQueue<ChatSession.Answer>()
        val turns = listOf(PromptFormat.Turn(true, "Hi"))
        session.send(turns, 8, {}) { answers.add(it) }
        checkEquals(ChatSession.Answer.Failed("native failure"), await(answers), "first answer")
        session.send(turns, 8, {}) { answers.add(it) }
        val second = await(answers)
        check(second is ChatSession.Answer.Done && second.reply.text == "xxx") { "$second" }
        session.close()
    }

    private fun rejectedNotOpened() {
        val copy = kotlin.io.path.createTempDirectory(fixtures.out.toPath(), "rejected").toFile()
        fixtures.bundle("executorch-prefix-kv").copyRecursively(copy, overwrite = true)
        File(copy, "model.pte").appendBytes(byteArrayOf(0))
        var engineOpened = false
        val session = ChatSession(post = { it.run() }, openEngine = { engineOpened = true; ScriptedEngine() })
        val opened = open(session, copy)
        check(opened is ChatSession.Opened.Failed && opened.reason.startsWith("model.pte:")) { "$opened" }
        check(!engineOpened) { "engine opened on a rejected bundle" }
        session.close()
    }
}
