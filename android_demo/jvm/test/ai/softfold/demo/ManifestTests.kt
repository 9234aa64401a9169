package ai.softfold.demo

import java.io.File
import java.io.RandomAccessFile
import java.nio.file.Files

/** BundleCheck on real bundles: what export wrote passes; any change to it is refused before load. */
class ManifestTests(private val fixtures: Fixtures) {
    fun all() = listOf(
        HostTest("exported bundles verify, every listed file hashed") { exportedBundlesVerify() },
        HostTest("flipped byte in model.pte is refused, naming the file") { flippedByteRefused("executorch-prefix-kv", "model.pte") },
        HostTest("flipped byte in model.onnx.data is refused, naming the file") { flippedByteRefused("onnx-prefix-kv", "model.onnx.data") },
        HostTest("truncated tokenizer.json is refused") { truncatedRefused() },
        HostTest("missing listed file is refused") { missingRefused() },
        HostTest("other schema_version is refused") { otherSchemaRefused() },
        HostTest("a version-1 manifest (runner_match) is read") { versionOneRead() },
        HostTest("a bundle of a merged LoRA alone (adapter, no soft_prompt) is read") { loraAloneRead() },
        HostTest("a bundle of steering vectors alone (steering, no soft_prompt) is read") { steeringAloneRead() },
        HostTest("model file the manifest does not list is refused") { unlistedModelRefused() },
        HostTest("streaming sha256 equals the manifest's for a multi-MiB file") { streamingSha256() },
        HostTest("a symlink to a file outside, listed with that file's sha256, is refused") { linkedFileRefused() },
        HostTest("a symlinked directory inside the bundle is refused") { linkedDirectoryRefused() },
        HostTest("a symlinked manifest.json is refused before it is read") { linkedManifestRefused() },
        HostTest("listed paths that leave the bundle are refused") { pathsOutsideRefused() },
    )

    private fun exportedBundlesVerify() {
        for ((name, dir) in fixtures.bundles) {
            val check = BundleCheck.of(dir)
            check(check is BundleCheck.Verified) { "$name: $check" }
            val manifest = (check as BundleCheck.Verified).manifest
            checkEquals(name.substringBefore('-'), manifest.backend, "$name backend")
            check(manifest.files.any { it.path == manifest.modelFile }) { "$name: ${manifest.modelFile} not listed" }
            check(manifest.parityPassed) { "$name: parity not passed" }
        }
    }

    private fun flippedByteRefused(bundle: String, file: String) {
        val copy = copyOf(bundle)
        val target = File(copy, file)
        RandomAccessFile(target, "rw").use { f ->
            val at = f.length() / 2
            f.seek(at)
            val byte = f.read()
            f.seek(at)
            f.write(byte xor 0x01)
        }
        val check = BundleCheck.of(copy)
        check(check is BundleCheck.Rejected) { "accepted a changed $file" }
        val reason = (check as BundleCheck.Rejected).reason
        check(reason.startsWith("$file: sha256 differs")) { reason }
    }

    private fun truncatedRefused() {
        val copy = copyOf("executorch-prefix-kv")
        val tokenizer = File(copy, "tokenizer.json")
        tokenizer.writeBytes(tokenizer.readBytes().copyOf(tokenizer.length().toInt() - 1))
        val reason = rejection(copy)
        check(reason.startsWith("tokenizer.json:") && "bytes" in reason) { reason }
    }

    private fun missingRefused() {
        val copy = copyOf("onnx-prefix-kv")
        File(copy, "genai_config.json").delete()
        checkEquals("genai_config.json: listed in manifest.json but missing", rejection(copy), "reason")
    }

    private fun otherSchemaRefused() {
        val copy = copyOf("executorch-prefix-kv")
        val manifest = File(copy, "manifest.json")
        manifest.writeText(manifest.readText().replace("\"schema_version\": 2", "\"schema_version\": 3"))
        val reason = rejection(copy)
        check(reason.startsWith("manifest.json has schema_version 3; this app reads 1 and 2")) { reason }
    }

    private fun versionOneRead() {
        val copy = copyOf("executorch-prefix-kv")
        val manifest = File(copy, "manifest.json")
        val v2 = manifest.readText()
        check("\"engine_match\": 1.0" in v2) { "the fixture's manifest has no engine_match" }
        manifest.writeText(v2.replace("\"schema_version\": 2", "\"schema_version\": 1")
            .replace("\"engine_match\"", "\"runner_match\""))
        val check = BundleCheck.of(copy)
        check(check is BundleCheck.Verified) { "refused a version-1 bundle: $check" }
        checkEquals(1.0, (check as BundleCheck.Verified).manifest.parityEngineMatch, "engine match read from runner_match")
    }

    private fun loraAloneRead() {
        val soft = fixtures.manifest("executorch-prefix-kv")
        check(soft.badge().startsWith("soft prompt N=16 · prefix-kv · ${soft.softPromptSha256!!.take(12)} · parity ✓")) {
            soft.badge()
        }
        val copy = copyOf("executorch-prefix-kv")
        val file = File(copy, "manifest.json")
        val manifest = org.json.JSONObject(file.readText())
        manifest.remove("soft_prompt")
        manifest.put("adapter", org.json.JSONObject(mapOf("peft_type" to "LORA", "rank" to 8, "alpha" to 16.0)))
        file.writeText(manifest.toString())
        val check = BundleCheck.of(copy)
        check(check is BundleCheck.Verified) { "refused a bundle without a soft prompt: $check" }
        val read = (check as BundleCheck.Verified).manifest
        checkEquals(0, read.softPromptTokens, "virtual tokens")
        checkEquals(8, read.loraRank, "LoRA rank")
        check(read.folding == null && read.badge().startsWith("LoRA r=8 merged · parity ✓")) { read.badge() }
    }

    private fun steeringAloneRead() {
        val copy = copyOf("executorch-prefix-kv")
        val file = File(copy, "manifest.json")
        val manifest = org.json.JSONObject(file.readText())
        manifest.remove("soft_prompt")
        manifest.put("steering", org.json.JSONObject(mapOf("format" to "llama.cpp control vector (GGUF)",
            "source" to "cv.gguf", "sha256" to "ef", "layers" to org.json.JSONArray(listOf(10, 11)))))
        file.writeText(manifest.toString())
        val check = BundleCheck.of(copy)
        check(check is BundleCheck.Verified) { "refused a bundle of steering vectors alone: $check" }
        val read = (check as BundleCheck.Verified).manifest
        checkEquals(listOf(10, 11), read.steeringLayers, "steered blocks")
        check(read.loraRank == null && read.badge().startsWith("steering after blocks 10,11 · parity ✓")) {
            read.badge()
        }
        checkEquals(emptyList<Int>(), fixtures.manifest("executorch-prefix-kv").steeringLayers, "no steering")
    }

    private fun unlistedModelRefused() {
        val copy = copyOf("executorch-prefix-kv")
        val manifest = File(copy, "manifest.json")
        manifest.writeText(manifest.readText().replace("\"path\": \"model.pte\"", "\"path\": \"old-model.pte\""))
        checkEquals("manifest.json does not list model.pte", rejection(copy), "reason")
    }

    private fun streamingSha256() {
        val big = fixtures.bigFile
        check(big.file.length() > 2 * (1 shl 20)) { "${big.file} is ${big.file.length()} bytes: not a multi-chunk case" }
        checkEquals(big.sha256, BundleCheck.sha256(big.file), "sha256 of ${big.file}")
    }

    private fun linkedFileRefused() {
        val copy = copyOf("executorch-prefix-kv")
        val outside = File(fixtures.out, "secret-${copy.name}.txt")
        outside.writeText("not the app's to read\n")
        Files.createSymbolicLink(File(copy, "secret").toPath(), outside.toPath())
        listFile(copy, "secret", outside.length(), BundleCheck.sha256(outside))
        checkEquals("secret: a symbolic link; a bundle holds plain files only: push the whole bundle again",
            rejection(copy), "reason")
    }

    private fun linkedDirectoryRefused() {
        val copy = copyOf("executorch-prefix-kv")
        Files.createSymbolicLink(File(copy, "more").toPath(), fixtures.out.toPath())
        val reason = rejection(copy)
        check(reason.startsWith("more: a symbolic link")) { reason }
    }

    private fun linkedManifestRefused() {
        val copy = copyOf("executorch-prefix-kv")
        val manifest = File(copy, "manifest.json")
        val moved = File(fixtures.out, "manifest-${copy.name}.json")
        manifest.copyTo(moved)
        manifest.delete()
        Files.createSymbolicLink(manifest.toPath(), moved.toPath())
        val reason = rejection(copy)
        check(reason.startsWith("manifest.json: a symbolic link")) { reason }
    }

    private fun pathsOutsideRefused() {
        for (path in listOf("../outside.txt", "/etc/hostname", "sub/../../outside.txt")) {
            val copy = copyOf("executorch-prefix-kv")
            listFile(copy, path, 1, "00")
            checkEquals("$path: listed outside the bundle directory", rejection(copy), "reason for $path")
        }
    }

    /** Adds an entry to the copy's manifest files list, as a tampered manifest would. */
    private fun listFile(copy: File, path: String, size: Long, sha256: String) {
        val file = File(copy, "manifest.json")
        val manifest = org.json.JSONObject(file.readText())
        val entry = org.json.JSONObject(mapOf("path" to path, "size" to size, "sha256" to sha256))
        manifest.getJSONArray("files").put(entry)
        file.writeText(manifest.toString())
    }

    private fun rejection(dir: File): String {
        val check = BundleCheck.of(dir)
        check(check is BundleCheck.Rejected) { "accepted $dir" }
        return (check as BundleCheck.Rejected).reason
    }

    private fun copyOf(bundle: String): File {
        val copy = Files.createTempDirectory(fixtures.out.toPath(), bundle).toFile()
        fixtures.bundle(bundle).copyRecursively(copy, overwrite = true)
        return copy
    }
}
