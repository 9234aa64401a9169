package ai.softfold.demo

import org.json.JSONArray
import org.json.JSONObject
import java.io.File

/** One entry of the manifest's "files": what export wrote, to check before anything is loaded. */
data class ListedFile(val path: String, val size: Long, val sha256: String)

/** The fields of a softfold bundle's manifest.json this app reads (softfold/bundle/manifest.py: MANIFEST_SCHEMA). */
data class BundleManifest(
    val schemaVersion: Int,
    val backend: String,
    val recipe: String,
    val modelFile: String,
    val contextLength: Int,
    val stopIds: List<Int>,
    val stopStrings: List<String>,
    val softPromptTokens: Int,  // 0: no soft prompt (a bundle of a merged LoRA alone)
    val folding: String?,  // null without a soft prompt
    val softPromptSha256: String?,
    val loraRank: Int?,  // the rank of the LoRA merged into the weights; null without one
    val steeringLayers: List<Int>,  // the blocks whose output gets a steering vector; empty without one
    val parityPassed: Boolean,
    val parityEngineMatch: Double?,
    val prompt: PromptFormat,
    val files: List<ListedFile>,
) {
    companion object {
        /** The manifest layouts this app reads; softfold bumps the version when a field changes meaning.
         *  Version 2 renamed parity.runner_match to engine_match (softfold/bundle/manifest.py). */
        val READABLE_VERSIONS = listOf(1, 2)

        fun parse(json: String): BundleManifest {
            val root = JSONObject(json)
            val model = root.getJSONObject("model")
            val softPrompt = root.optJSONObject("soft_prompt")  // optional, as "adapter" and "steering" are
            val adapter = root.optJSONObject("adapter")
            val steering = root.optJSONObject("steering")
            val parity = root.getJSONObject("parity")
            val format = root.getJSONObject("prompt_format")
            val files = root.getJSONArray("files")
            return BundleManifest(
                schemaVersion = root.getInt("schema_version"),
                backend = root.getString("backend"),
                recipe = root.getString("recipe"),
                modelFile = model.getString("file"),
                contextLength = model.getInt("context_length"),
                stopIds = model.getJSONArray("stop_ids").ints(),
                stopStrings = model.getJSONArray("stop_strings").strings(),
                softPromptTokens = softPrompt?.getInt("num_virtual_tokens") ?: 0,
                folding = softPrompt?.getString("folding"),
                softPromptSha256 = softPrompt?.getString("sha256"),
                loraRank = adapter?.getInt("rank"),
                steeringLayers = steering?.getJSONArray("layers")?.ints() ?: emptyList(),
                parityPassed = parity.getBoolean("passed"),
                parityEngineMatch = parity.optionalDouble("engine_match") ?: parity.optionalDouble("runner_match"),
                prompt = PromptFormat(
                    preamble = format.getString("preamble"),
                    userPrefix = format.getString("user_prefix"),
                    userSuffix = format.getString("user_suffix"),
                    assistantPrefix = format.getString("assistant_prefix"),
                    assistantSuffix = format.getString("assistant_suffix"),
                    generationPrefix = format.getString("generation_prefix"),
                ),
                files = List(files.length()) { files.getJSONObject(it).listedFile() },
            )
        }

        private fun JSONObject.optionalDouble(key: String) = if (has(key)) getDouble(key) else null
        private fun JSONObject.listedFile() = ListedFile(getString("path"), getLong("size"), getString("sha256"))
        private fun JSONArray.ints() = List(length()) { getInt(it) }
        private fun JSONArray.strings() = List(length()) { getString(it) }
    }

    /** The badge: soft prompt N, folding mode, sha256 prefix; the merged LoRA's rank; the steered blocks; and the
     *  parity verdict. */
    fun badge(): String {
        val match = parityEngineMatch?.let { " · engine match ${(it * 100).toInt()}%" } ?: ""
        val verdict = if (parityPassed) "parity ✓" else "parity FAILED"
        val carried = listOfNotNull(
            softPromptSha256?.let { "soft prompt N=$softPromptTokens · $folding · ${it.take(12)}" },
            loraRank?.let { "LoRA r=$it merged" },
            steeringLayers.takeIf { it.isNotEmpty() }?.let { "steering after blocks ${it.joinToString(",")}" },
        )
        return (carried + "$verdict$match").joinToString(" · ")
    }
}
