package ai.softfold.demo

import org.json.JSONArray
import org.json.JSONObject
import java.io.File

/** What the Python side recorded from real bundles (tests/test_android_demo.py: jvm_fixtures). */
class Fixtures(
    val bundles: Map<String, File>,
    val chatTemplates: List<ChatTemplateCase>,
    val recordings: List<Recording>,
    val tokenCounts: List<TokenCount>,
    val bigFile: HashedFile,
    val out: File,
) {
    /** A file over two of BundleCheck's 1 MiB read chunks, with its sha256 by Python's hashlib. */
    class HashedFile(val file: File, val sha256: String)

    /** The chat template's rendering of [turns], by the bundle's tokenizer (transformers). */
    class ChatTemplateCase(val bundle: String, val turns: List<PromptFormat.Turn>, val expected: String)

    /** One reply from TextLLMRunner: each token's bytes as its callback got them, and softfold's own cut. */
    class Recording(val name: String, val bundle: String, val tokens: List<ByteArray>, val expected: String)

    /** A text and its token count by the bundle's tokenizer (tokenizers, no special tokens added). */
    class TokenCount(val bundle: String, val text: String, val tokens: Int)

    fun bundle(name: String) = bundles.getValue(name)

    fun manifest(name: String) = BundleManifest.parse(File(bundle(name), "manifest.json").readText())

    companion object {
        fun read(file: File): Fixtures {
            val root = JSONObject(file.readText())
            val bundles = root.getJSONObject("bundles")
            return Fixtures(
                bundles = bundles.keys().asSequence().associateWith { File(bundles.getString(it)) },
                chatTemplates = root.getJSONArray("chat_templates").objects().map {
                    ChatTemplateCase(it.getString("bundle"), it.getJSONArray("turns").turns(), it.getString("expected"))
                },
                recordings = root.getJSONArray("recordings").objects().map { rec ->
                    val tokens = rec.getJSONArray("tokens_hex")
                    Recording(rec.getString("name"), rec.getString("bundle"),
                        List(tokens.length()) { hex(tokens.getString(it)) }, rec.getString("expected"))
                },
                tokenCounts = root.getJSONArray("token_counts").objects().map {
                    TokenCount(it.getString("bundle"), it.getString("text"), it.getInt("tokens"))
                },
                bigFile = root.getJSONObject("big_file").let { HashedFile(File(it.getString("path")), it.getString("sha256")) },
                out = File(root.getString("out")),
            )
        }

        private fun JSONArray.objects() = List(length()) { getJSONObject(it) }

        private fun JSONArray.turns() = List(length()) {
            val turn = getJSONObject(it)
            PromptFormat.Turn(fromUser = turn.getString("role") == "user", text = turn.getString("content"))
        }

        private fun hex(text: String) = ByteArray(text.length / 2) { text.substring(2 * it, 2 * it + 2).toInt(16).toByte() }
    }
}
