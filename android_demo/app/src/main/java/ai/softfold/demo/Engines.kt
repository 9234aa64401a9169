package ai.softfold.demo

import ai.onnxruntime.genai.Generator
import ai.onnxruntime.genai.GeneratorParams
import ai.onnxruntime.genai.Model
import ai.onnxruntime.genai.Tokenizer
import org.json.JSONObject
import org.pytorch.executorch.extension.llm.LlmCallback
import org.pytorch.executorch.extension.llm.LlmModule
import java.io.File

/** One reply: the text before the stop, and its speed. */
data class Reply(val text: String, val newTokens: Int, val tokensPerSecond: Double)

/**
 * A verified bundle's engine, picked from manifest "backend". Greedy decoding, as softfold's parity
 * gate ran it. Not thread-safe: one thread calls generate and close; [stop] may come from any thread.
 */
interface ChatEngine : AutoCloseable {
    /** Tokens the engine will see for this prompt text (an upper bound where the engine cannot tell). */
    fun countTokens(text: String): Int

    /** Streams the reply's text to [onText], ending at a stop, after [maxNewTokens] tokens, or on [stop]. */
    fun generate(prompt: String, maxNewTokens: Int, onText: (String) -> Unit): Reply

    /** Ends a running generate early; its reply keeps what came so far. */
    fun stop()

    companion object {
        fun open(bundle: BundleCheck.Verified): ChatEngine = when (bundle.manifest.backend) {
            "executorch" -> ExecuTorchEngine(bundle.dir, bundle.manifest)
            "onnx" -> OrtGenAiEngine(bundle.dir, bundle.manifest)
            else -> error("backend '${bundle.manifest.backend}' has no chat engine in this app (an .ort bundle needs an OrtSession)")
        }
    }
}

/** ExecuTorch's LlmModule: the C++ TextLLMRunner that softfold's parity gate runs on the host. */
class ExecuTorchEngine(bundleDir: File, private val manifest: BundleManifest) : ChatEngine {
    private val module = LlmModule(
        File(bundleDir, manifest.modelFile).path, File(bundleDir, "tokenizer.json").path, 0.0f,
    ).also { it.load() }  // throws if the program does not load
    private val tokenBound = TokenUpperBound(specialTokens(File(bundleDir, "tokenizer.json").readText()))
    @Volatile private var current: ReplyCallback? = null

    override fun countTokens(text: String) = tokenBound(text)

    override fun generate(prompt: String, maxNewTokens: Int, onText: (String) -> Unit): Reply {
        module.resetContext()  // position 0; the folded soft prompt stays
        val callback = ReplyCallback(manifest.stopStrings, maxNewTokens, onText) { module.stop() }
        current = callback
        val start = System.nanoTime()
        try {
            // seqLen caps prompt + reply; the callback ends the reply at a stop or at maxNewTokens.
            module.generate(prompt, manifest.contextLength, callback, false)
        } finally {
            current = null
        }
        val text = callback.finish()
        return Reply(text, callback.pieces, callback.pieces / ((System.nanoTime() - start) / 1e9))
    }

    override fun stop() {
        current?.cancel()
    }

    override fun close() = module.close()

    companion object {
        fun specialTokens(tokenizerJson: String): List<String> =
            JSONObject(tokenizerJson).getJSONArray("added_tokens").let { added ->
                List(added.length()) { added.getJSONObject(it).getString("content") }
            }
    }
}

/**
 * The LlmCallback of one reply. LlmModule's stop() only ends the decode loop that is running: called
 * from the first piece (the prefill's token), it is undone when decoding starts. So once the reply is
 * over, every further piece asks to stop again, and is dropped.
 */
class ReplyCallback(
    stopStrings: List<String>,
    private val maxNewTokens: Int,
    private val onText: (String) -> Unit,
    private val requestStop: () -> Unit,
) : LlmCallback {
    private val detector = StopDetector(stopStrings)
    private val text = StringBuilder()
    @Volatile private var cancelled = false
    private var over = false

    var pieces = 0
        private set

    override fun onResult(result: String) {
        if (over) return requestStop()
        pieces += 1
        show(detector.accept(result))
        if (detector.stopped || cancelled || pieces >= maxNewTokens) {
            over = true
            requestStop()
        }
    }

    fun cancel() {
        cancelled = true
        requestStop()
    }

    /** The reply's text, once generate has returned. */
    fun finish(): String {
        if (!detector.stopped) show(detector.finish())
        return text.toString()
    }

    private fun show(piece: String) {
        if (piece.isEmpty()) return
        text.append(piece)
        onText(piece)
    }
}

/** ONNX Runtime GenAI: the same C++ core softfold runs through onnxruntime_genai on the host. */
class OrtGenAiEngine(bundleDir: File, private val manifest: BundleManifest) : ChatEngine {
    private val model = Model(bundleDir.path)
    private val tokenizer = Tokenizer(model)
    @Volatile private var cancelled = false

    override fun countTokens(text: String) = tokenizer.encode(text).use { it.getSequence(0).size }

    override fun generate(prompt: String, maxNewTokens: Int, onText: (String) -> Unit): Reply {
        cancelled = false
        val text = StringBuilder()
        var tokens = 0
        val start = System.nanoTime()
        GeneratorParams(model).use { params ->
            tokenizer.encode(prompt).use { ids ->
                val promptTokens = ids.getSequence(0).size
                params.setSearchOption("do_sample", false)
                params.setSearchOption("max_length", minOf(manifest.contextLength, promptTokens + maxNewTokens).toDouble())
                Generator(model, params).use { generator ->
                    generator.appendTokenSequences(ids)
                    tokenizer.createStream().use { stream ->
                        while (!generator.isDone && !cancelled) {
                            generator.generateNextToken()
                            val id = generator.getLastTokenInSequence(0)
                            if (id in manifest.stopIds) break
                            val piece = stream.decode(id)
                            text.append(piece)
                            onText(piece)
                            tokens += 1
                        }
                    }
                }
            }
        }
        return Reply(text.toString(), tokens, tokens / ((System.nanoTime() - start) / 1e9))
    }

    override fun stop() {
        cancelled = true
    }

    override fun close() {
        tokenizer.close()
        model.close()
    }
}
