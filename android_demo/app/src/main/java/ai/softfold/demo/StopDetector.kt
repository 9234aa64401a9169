package ai.softfold.demo

/**
 * Cuts a streamed reply at its first stop string (manifest "stop_strings").
 *
 * LlmModule hands over decoded pieces, not token ids: usually one token each, but a character split
 * across tokens arrives whole with the token that completes it, and a stop string may span pieces or
 * sit inside one. So the text is scanned, and a tail that could still begin a stop string is held back.
 */
class StopDetector(stopStrings: List<String>) {
    private val stops = stopStrings.filter { it.isNotEmpty() }
    private val pending = StringBuilder()

    var stopped = false
        private set

    /** The text that is now safe to show ("" once stopped). */
    fun accept(piece: String): String {
        if (stopped) return ""
        pending.append(piece)
        val cut = stops.mapNotNull { stop -> pending.indexOf(stop).takeIf { it >= 0 } }.minOrNull()
        if (cut != null) {
            stopped = true
            return pending.substring(0, cut).also { pending.clear() }
        }
        val ready = pending.length - heldBack()
        return pending.substring(0, ready).also { pending.delete(0, ready) }
    }

    /** The held-back tail, when generation ended without a stop string. */
    fun finish(): String = pending.toString().also { pending.clear() }

    /** Length of the longest tail of `pending` that is a proper prefix of a stop string. */
    private fun heldBack(): Int {
        val longest = minOf(pending.length, (stops.maxOfOrNull { it.length } ?: 1) - 1)
        return (longest downTo 1).firstOrNull { n ->
            val tail = pending.substring(pending.length - n)
            stops.any { it.startsWith(tail) }
        } ?: 0
    }
}
