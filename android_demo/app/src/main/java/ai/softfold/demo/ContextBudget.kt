package ai.softfold.demo

/** What fits the model's context: the prompt to send and how much of the conversation it keeps. */
sealed interface Fit {
    data class Prompt(val text: String, val tokens: Int, val droppedTurns: Int) : Fit
    data class TooLong(val tokens: Int, val limit: Int) : Fit
}

/**
 * Keeps prompt + reply within the context: the preamble (which carries virtual tokens, if any) and the
 * newest message always stay; the oldest exchanges go first, a user turn with its reply, so the kept
 * conversation still starts with the user.
 */
class ContextBudget(
    private val format: PromptFormat,
    private val contextLength: Int,
    private val countTokens: (String) -> Int,
) {
    fun fit(turns: List<PromptFormat.Turn>, maxNewTokens: Int): Fit {
        val limit = contextLength - maxNewTokens
        var dropped = 0
        while (true) {
            val kept = turns.drop(dropped)
            val text = format.render(kept)
            val tokens = countTokens(text)
            if (tokens <= limit) return Fit.Prompt(text, tokens, dropped)
            if (kept.size <= 1) return Fit.TooLong(tokens, limit)
            dropped += if (kept.size >= 3 && kept[0].fromUser && !kept[1].fromUser) 2 else 1
        }
    }
}

/**
 * An upper bound on a text's token count, for an engine that exposes no tokenizer (LlmModule): each
 * special token (tokenizer.json "added_tokens", e.g. <|im_start|> or a virtual token) is one token,
 * other text at most one token per UTF-8 byte (byte-level BPE) plus one per stretch (a SentencePiece
 * word-start marker), plus one for a BOS the runner may add. Safe, but it trims earlier than needed.
 */
class TokenUpperBound(specialTokens: Collection<String>) : (String) -> Int {
    private val specials = specialTokens.filter { it.isNotEmpty() }.sortedByDescending { it.length }

    override fun invoke(text: String): Int {
        var tokens = 1
        var stretch = 0
        var i = 0
        while (i < text.length) {
            val special = specials.firstOrNull { text.startsWith(it, i) }
            if (special != null) {
                if (stretch > 0) tokens += stretch + 1
                stretch = 0
                tokens += 1
                i += special.length
            } else {
                val end = if (Character.isHighSurrogate(text[i]) && i + 1 < text.length) i + 2 else i + 1
                stretch += text.substring(i, end).toByteArray(Charsets.UTF_8).size
                i = end
            }
        }
        return if (stretch > 0) tokens + stretch + 1 else tokens
    }
}
