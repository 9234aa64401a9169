package ai.softfold.demo

import java.io.ByteArrayOutputStream
import java.nio.ByteBuffer
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction

/**
 * The ExecuTorch adapter's callback on pieces TextLLMRunner produced. Each recording holds every
 * token's bytes; [JniPieces] turns them into what LlmCallback.onResult receives on the phone, and the
 * runner keeps calling back after stop() was asked for from the prefill's piece, as it does.
 */
class StopTests(private val fixtures: Fixtures) {
    fun all() = fixtures.recordings.map { rec ->
        HostTest("stop rule on recorded pieces: ${rec.name}") { recorded(rec) }
    } + listOf(
        HostTest("recordings cover end-of-turn first, later, and a split character") { coverage() },
        HostTest("stop string split across pieces or inside one") { splitStop() },
        HostTest("held-back text that is not a stop string is shown") { falseAlarm() },
        HostTest("maxNewTokens ends the reply") { maxNewTokens() },
        HostTest("cancel ends the reply and keeps what came") { cancel() },
    )

    private fun recorded(rec: Fixtures.Recording) {
        val stops = fixtures.manifest(rec.bundle).stopStrings
        val shown = StringBuilder()
        var stopRequests = 0
        val callback = ReplyCallback(stops, maxNewTokens = 1000, onText = { shown.append(it) }) { stopRequests += 1 }
        val pieces = JniPieces.of(rec.tokens)
        var firstStopAt = -1
        for ((i, piece) in pieces.withIndex()) {
            callback.onResult(piece)
            if (stopRequests > 0 && firstStopAt < 0) firstStopAt = i
        }
        val text = callback.finish()
        checkEquals(rec.expected, text, "reply")
        checkEquals(rec.expected, shown.toString(), "streamed text")
        val stopPiece = pieces.indexOfFirst { p -> stops.any { it in p } }
        if (stopPiece >= 0) {
            checkEquals(stopPiece, firstStopAt, "first stop request at piece")
            checkEquals(pieces.size - stopPiece, stopRequests, "stop requests (one per piece from the stop on)")
        } else {
            checkEquals(0, stopRequests, "stop requests")
        }
    }

    private fun coverage() {
        val stops = fixtures.recordings.map { rec ->
            val stopStrings = fixtures.manifest(rec.bundle).stopStrings
            JniPieces.of(rec.tokens).indexOfFirst { p -> stopStrings.any { it in p } }
        }
        check(0 in stops) { "no recording whose first piece is end-of-turn: $stops" }
        check(stops.any { it > 0 }) { "no recording that ends later: $stops" }
        val split = fixtures.recordings.filter { rec -> rec.tokens.any { !JniPieces.isUtf8(it) } }
        check(split.isNotEmpty()) { "no recording with a character split across tokens" }
        check(split.all { rec -> rec.expected.any { it.code > 0x7f } }) { "split character missing from the reply" }
    }

    private fun splitStop() {
        checkEquals("ab", reply(listOf("ab<|im_", "end|>cd", "ef")), "spanning two pieces")
        checkEquals("ab", reply(listOf("a", "b<|im_end|>c")), "inside a piece")
        checkEquals("é", reply(listOf("é<", "|", "im", "_end|>")), "one character at a time")
    }

    private fun falseAlarm() {
        val shown = mutableListOf<String>()
        val callback = ReplyCallback(listOf("<|im_end|>"), 100, { shown += it }) {}
        callback.onResult("x <|im")
        checkEquals(listOf("x "), shown.toList(), "held back")
        callback.onResult("portant|>")
        checkEquals("x <|important|>", callback.finish(), "reply")
        checkEquals("x <|important|>", shown.joinToString(""), "streamed")
    }

    private fun maxNewTokens() {
        var stopRequests = 0
        val callback = ReplyCallback(listOf("<|im_end|>"), 3, {}) { stopRequests += 1 }
        listOf("a", "b", "c", "d", "e").forEach(callback::onResult)
        checkEquals("abc", callback.finish(), "reply")
        checkEquals(3, stopRequests, "stop requests")
    }

    private fun cancel() {
        var stopRequests = 0
        val callback = ReplyCallback(listOf("<|im_end|>"), 100, {}) { stopRequests += 1 }
        callback.onResult("a")
        callback.cancel()
        callback.onResult("b")
        callback.onResult("c")
        checkEquals("ab", callback.finish(), "reply")
        checkEquals(3, stopRequests, "stop requests")
    }

    private fun reply(pieces: List<String>): String {
        val callback = ReplyCallback(listOf("<|im_end|>"), 100, {}) {}
        pieces.forEach(callback::onResult)
        return callback.finish()
    }
}

/**
 * What executorch's JNI layer (extension/android/jni/jni_layer_llama.cpp, generate's token_callback)
 * does with each token's bytes before LlmCallback.onResult: it buffers them until they are valid
 * UTF-8, then hands the buffer over as one String.
 */
object JniPieces {
    fun of(tokens: List<ByteArray>): List<String> {
        val buffer = ByteArrayOutputStream()
        return tokens.mapNotNull { token ->
            buffer.write(token)
            val bytes = buffer.toByteArray()
            if (isUtf8(bytes)) String(bytes, Charsets.UTF_8).also { buffer.reset() } else null
        }
    }

    fun isUtf8(bytes: ByteArray) = try {
        Charsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes))
        true
    } catch (e: CharacterCodingException) {
        false
    }
}
