// Signature-only stub for compiling the app on the host JVM; the real class ships in
// org.pytorch:executorch-android. Mirrors pytorch/executorch
// extension/android/executorch_android/src/main/java/org/pytorch/executorch/extension/llm/LlmModule.kt
// at cff6f4dd (version.txt 1.5.0; the same API as v1.4.1): only the members the app calls.
package org.pytorch.executorch.extension.llm

import java.io.Closeable

class LlmModule(modulePath: String, tokenizerPath: String, temperature: Float) : Closeable {
    /** Upstream: throws ExecutorchRuntimeException when loading fails (returns Unit since 1.3). */
    fun load(): Unit = stub()

    /** Upstream: seqLen is the total length, prompt tokens included; throws on failure. */
    fun generate(prompt: String, seqLen: Int, llmCallback: LlmCallback, echo: Boolean): Unit = stub()

    fun resetContext(): Unit = stub()

    fun stop(): Unit = stub()

    /** Upstream: throws IllegalStateException while a generate() is running. */
    override fun close(): Unit = stub()
}

private fun stub(): Nothing = throw UnsupportedOperationException("host stub: the real LlmModule is in executorch-android")
