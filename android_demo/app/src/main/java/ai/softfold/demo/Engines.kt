package ai.softfold.demo

import ai.onnxruntime.genai.Generator
import ai.onnxruntime.genai.GeneratorParams
import ai.onnxruntime.genai.Model
import ai.onnxruntime.genai.Tokenizer
import org.pytorch.executorch.extension.llm.LlmCallback
import org.pytorch.executorch.extension.llm.LlmModule
import java.io.File

/** One reply: the streamed text and its speed. */
data class Reply(val text: String, val newTokens: Int, val tokensPerSecond: Double)

/** A bundle's engine, picked from manifest "backend". Greedy decoding, as softfold's parity gate. */
interface ChatEngine : AutoCloseable {
    fun generate(prompt: String, maxNewTokens: Int, onPiece: (String) -> Unit): Reply

    companion object {
        fun open(bundleDir: File, manifest: BundleManifest): ChatEngine = when (manifest.backend) {
            "executorch" -> ExecuTorchEngine(bundleDir, manifest)
            "onnx" -> OrtGenAiEngine(bundleDir, manifest)
            else -> error("backend '${manifest.backend}' has no chat engine in this app (an .ort bundle needs an OrtSession)")
        }
    }
}

/** ExecuTorch's LlmModule: the C++ TextLLMRunner that softfold checks on the host. */
class ExecuTorchEngine(bundleDir: File, private val manifest: BundleManifest) : ChatEngine {
    private val module = LlmModule(
        File(bundleDir, manifest.modelFile).path, File(bundleDir, "tokenizer.json").path, 0.0f,
    ).also { check(it.load() == 0) { "LlmModule failed to load ${manifest.modelFile}" } }

    override fun generate(prompt: String, maxNewTokens: Int, onPiece: (String) -> Unit): Reply {
        module.resetContext()  // position 0; the folded soft prompt stays
        val text = StringBuilder()
        var pieces = 0
        var ended = false
        val start = System.nanoTime()
        module.generate(prompt, manifest.contextLength, object : LlmCallback {
            override fun onResult(result: String) {
                if (ended) return
                // Stop rule: a stop string ends the reply (the runner does not check the first token).
                if (result in manifest.stopStrings) { ended = true; module.stop(); return }
                text.append(result)
                onPiece(result)
                pieces += 1
                if (pieces >= maxNewTokens) { ended = true; module.stop() }
            }

            override fun onStats(stats: String) {}
        }, false)
        return Reply(text.toString(), pieces, pieces / ((System.nanoTime() - start) / 1e9))
    }

    override fun close() = module.resetNative()
}

/** ONNX Runtime GenAI: the same C++ core softfold runs through onnxruntime_genai on the host. */
class OrtGenAiEngine(bundleDir: File, private val manifest: BundleManifest) : ChatEngine {
    private val model = Model(bundleDir.path)
    private val tokenizer = Tokenizer(model)

    override fun generate(prompt: String, maxNewTokens: Int, onPiece: (String) -> Unit): Reply {
        val ids = tokenizer.encode(prompt)
        val promptTokens = ids.getSequence(0).size
        val params = GeneratorParams(model)
        params.setSearchOption("max_length", minOf(manifest.contextLength, promptTokens + maxNewTokens).toDouble())
        val generator = Generator(model, params)
        val stream = tokenizer.createStream()
        val text = StringBuilder()
        var pieces = 0
        val start = System.nanoTime()
        generator.appendTokenSequences(ids)
        while (!generator.isDone) {
            generator.generateNextToken()
            val id = generator.getLastTokenInSequence(0)
            if (id in manifest.stopIds) break
            val piece = stream.decode(id)
            text.append(piece)
            onPiece(piece)
            pieces += 1
        }
        generator.close(); params.close(); stream.close()
        return Reply(text.toString(), pieces, pieces / ((System.nanoTime() - start) / 1e9))
    }

    override fun close() { tokenizer.close(); model.close() }
}
