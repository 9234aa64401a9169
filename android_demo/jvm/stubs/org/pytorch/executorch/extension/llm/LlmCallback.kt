// Signature-only stub. Mirrors pytorch/executorch
// extension/android/executorch_android/src/main/java/org/pytorch/executorch/extension/llm/LlmCallback.kt
// at cff6f4dd (version.txt 1.5.0).
package org.pytorch.executorch.extension.llm

interface LlmCallback {
    /** Upstream (jni_layer_llama.cpp): one call per token, except that bytes of a partial UTF-8
     *  character are held back and delivered with the token that completes it. */
    fun onResult(result: String)

    fun onStats(stats: String) {}

    fun onError(errorCode: Int, message: String) {}
}
