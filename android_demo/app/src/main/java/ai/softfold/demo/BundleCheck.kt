package ai.softfold.demo

import org.json.JSONException
import java.io.File
import java.nio.file.Files
import java.security.MessageDigest

/** A bundle directory, checked before any engine touches it: plain files only (no symbolic links), a readable
 *  manifest of the schema this app knows, listing every file the engine will read, each inside the bundle with the
 *  size and sha256 export wrote. */
sealed interface BundleCheck {
    data class Verified(val dir: File, val manifest: BundleManifest) : BundleCheck
    data class Rejected(val reason: String) : BundleCheck

    companion object {
        fun of(dir: File): BundleCheck {
            symlinkIn(dir)?.let {
                return Rejected("$it: a symbolic link; a bundle holds plain files only: push the whole bundle again")
            }
            val manifestFile = File(dir, "manifest.json")
            if (!manifestFile.isFile) return Rejected("no manifest.json in $dir: push a whole softfold bundle there")
            val manifest = try {
                BundleManifest.parse(manifestFile.readText())
            } catch (e: JSONException) {
                return Rejected("manifest.json is not a softfold manifest: ${e.message}")
            }
            if (manifest.schemaVersion !in BundleManifest.READABLE_VERSIONS) {
                return Rejected("manifest.json has schema_version ${manifest.schemaVersion}; this app reads " +
                    "${BundleManifest.READABLE_VERSIONS.joinToString(" and ")}: use an app and a softfold release that agree")
            }
            val listed = manifest.files.associateBy { it.path }
            val unlisted = engineInputs(manifest).filter { it !in listed }
            if (unlisted.isNotEmpty()) return Rejected("manifest.json does not list ${unlisted.joinToString()}")
            for (file in manifest.files) {
                problem(dir, file)?.let { return Rejected(it) }
            }
            return Verified(dir, manifest)
        }

        /** The files the manifest's engine opens by name (ORT GenAI also reads what genai_config.json names). */
        fun engineInputs(manifest: BundleManifest): List<String> = when (manifest.backend) {
            "onnx" -> listOf("genai_config.json", manifest.modelFile, "tokenizer.json")
            else -> listOf(manifest.modelFile, "tokenizer.json")
        }

        /** The first symbolic link inside the bundle (to a file or a directory), by its path inside it; null when
         *  there is none. A link could point the checksum, and then the engine, at a file outside the bundle. */
        fun symlinkIn(dir: File): String? {
            val root = dir.canonicalFile.toPath()
            return Files.walk(root).use { paths ->  // links are not followed: a linked directory is not entered
                paths.filter { Files.isSymbolicLink(it) }.map { root.relativize(it).toString() }.sorted()
                    .findFirst().orElse(null)
            }
        }

        /** Whether a listed path names a place inside the bundle: relative, no "..", and so once resolved. */
        fun inside(dir: File, path: String): Boolean {
            if (path.isEmpty() || path.startsWith("/") || '\\' in path) return false
            if (path.split('/').any { it == ".." }) return false
            val root = dir.canonicalFile
            return File(root, path).canonicalFile.toPath().startsWith(root.toPath())
        }

        private fun problem(dir: File, listed: ListedFile): String? {
            if (!inside(dir, listed.path)) return "${listed.path}: listed outside the bundle directory"
            val file = File(dir, listed.path)
            return when {
                !file.isFile -> "${listed.path}: listed in manifest.json but missing"
                file.length() != listed.size ->
                    "${listed.path}: ${file.length()} bytes, manifest.json says ${listed.size} (incomplete push?)"
                sha256(file) != listed.sha256 ->
                    "${listed.path}: sha256 differs from manifest.json (changed after export): push the bundle again"
                else -> null
            }
        }

        /** Streams the file: model weights do not fit in memory twice. */
        fun sha256(file: File): String {
            val digest = MessageDigest.getInstance("SHA-256")
            val buffer = ByteArray(1 shl 20)
            file.inputStream().use { input ->
                while (true) {
                    val read = input.read(buffer)
                    if (read < 0) break
                    digest.update(buffer, 0, read)
                }
            }
            return digest.digest().joinToString("") { "%02x".format(it) }
        }
    }
}
