package ai.softfold.demo

import org.json.JSONArray
import org.json.JSONObject
import java.io.File

/** The fields of a softfold bundle's manifest.json this app reads (softfold/bundle.py: MANIFEST_SCHEMA). */
data class BundleManifest(
    val backend: String,
    val recipe: String,
    val modelFile: String,
    val contextLength: Int,
    val stopIds: List<Int>,
    val stopStrings: List<String>,
    val softPromptTokens: Int,
    val folding: String,
    val softPromptSha256: String,
    val parityPassed: Boolean,
    val parityEngineMatch: Double?,
    val prompt: PromptFormat,
) {
    companion object {
        fun read(bundleDir: File): BundleManifest {
            val root = JSONObject(File(bundleDir, "manifest.json").readText())
            val model = root.getJSONObject("model")
            val softPrompt = root.getJSONObject("soft_prompt")
            val parity = root.getJSONObject("parity")
            val format = root.getJSONObject("prompt_format")
            return BundleManifest(
                backend = root.getString("backend"),
                recipe = root.getString("recipe"),
                modelFile = model.getString("file"),
                contextLength = model.getInt("context_length"),
                stopIds = model.getJSONArray("stop_ids").ints(),
                stopStrings = model.getJSONArray("stop_strings").strings(),
                softPromptTokens = softPrompt.getInt("num_virtual_tokens"),
                folding = softPrompt.getString("folding"),
                softPromptSha256 = softPrompt.getString("sha256"),
                parityPassed = parity.getBoolean("passed"),
                parityEngineMatch = if (parity.has("runner_match")) parity.getDouble("runner_match") else null,
                prompt = PromptFormat(
                    preamble = format.getString("preamble"),
                    userPrefix = format.getString("user_prefix"),
                    userSuffix = format.getString("user_suffix"),
                    assistantPrefix = format.getString("assistant_prefix"),
                    assistantSuffix = format.getString("assistant_suffix"),
                    generationPrefix = format.getString("generation_prefix"),
                ),
            )
        }

        private fun JSONArray.ints() = List(length()) { getInt(it) }
        private fun JSONArray.strings() = List(length()) { getString(it) }
    }

    /** The badge: soft prompt N, folding mode, sha256 prefix, and the parity verdict. */
    fun badge(): String {
        val match = parityEngineMatch?.let { " · engine match ${(it * 100).toInt()}%" } ?: ""
        val verdict = if (parityPassed) "parity ✓" else "parity FAILED"
        return "soft prompt N=$softPromptTokens · $folding · ${softPromptSha256.take(12)} · $verdict$match"
    }
}
