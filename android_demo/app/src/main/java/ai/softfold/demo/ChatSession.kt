package ai.softfold.demo

import java.io.File
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * The app without its screen: verifies and loads a bundle, then answers messages, all on one worker
 * thread, so close() never runs while generate() does. Results come back through [post] (the UI
 * posts them to its own thread); failures come back as text, never as a crash of the worker.
 */
class ChatSession(
    private val post: (Runnable) -> Unit,
    private val worker: ExecutorService = Executors.newSingleThreadExecutor(),
    private val openEngine: (BundleCheck.Verified) -> ChatEngine = ChatEngine::open,
) {
    sealed interface Opened {
        data class Ready(val manifest: BundleManifest) : Opened
        data class Failed(val reason: String) : Opened
    }

    sealed interface Answer {
        data class Done(val reply: Reply, val droppedTurns: Int) : Answer
        data class Failed(val reason: String) : Answer
    }

    @Volatile private var engine: ChatEngine? = null
    @Volatile private var closing = false
    private var budget: ContextBudget? = null

    fun open(bundleDir: File, then: (Opened) -> Unit) = onWorker(then, Opened::Failed) {
        when (val check = BundleCheck.of(bundleDir)) {
            is BundleCheck.Rejected -> Opened.Failed(check.reason)
            is BundleCheck.Verified -> {
                val opened = openEngine(check)
                engine = opened
                budget = ContextBudget(check.manifest.prompt, check.manifest.contextLength, opened::countTokens)
                Opened.Ready(check.manifest)
            }
        }
    }

    /** [turns] is a snapshot that ends with the new user message; [onText] runs on the UI thread. */
    fun send(turns: List<PromptFormat.Turn>, maxNewTokens: Int, onText: (String) -> Unit, then: (Answer) -> Unit) =
        onWorker(then, Answer::Failed) {
            val engine = checkNotNull(engine) { "no bundle loaded" }
            when (val fit = checkNotNull(budget).fit(turns, maxNewTokens)) {
                is Fit.TooLong -> Answer.Failed("message too long: ${fit.tokens} tokens, room for ${fit.limit}")
                is Fit.Prompt -> {
                    val reply = engine.generate(fit.text, maxNewTokens) { piece -> post(Runnable { onText(piece) }) }
                    Answer.Done(reply, fit.droppedTurns)
                }
            }
        }

    /** Ends the running reply early (from any thread). */
    fun stop() {
        engine?.stop()
    }

    /** Stops the running reply, then frees the engine once it has returned; later calls are ignored. */
    fun close() {
        if (closing) return
        closing = true
        stop()
        worker.execute { engine?.close(); engine = null }
        worker.shutdown()
    }

    private fun <T> onWorker(then: (T) -> Unit, failed: (String) -> T, body: () -> T) {
        if (closing) return
        worker.execute {
            if (closing) return@execute
            val result = try {
                body()
            } catch (e: Exception) {  // a native failure must not kill the worker (and with it the app)
                failed(e.message ?: e.javaClass.simpleName)
            }
            post(Runnable { then(result) })
        }
    }
}
