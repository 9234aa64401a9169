package ai.softfold.demo

/** The chat template as strings (manifest "prompt_format"): no Jinja on the phone. */
data class PromptFormat(
    val preamble: String,
    val userPrefix: String,
    val userSuffix: String,
    val assistantPrefix: String,
    val assistantSuffix: String,
    val generationPrefix: String,
) {
    data class Turn(val fromUser: Boolean, val text: String)

    /** preamble + each turn wrapped in its role's prefix/suffix + the generation prefix. */
    fun render(turns: List<Turn>): String = buildString {
        append(preamble)
        for (turn in turns) {
            if (turn.fromUser) append(userPrefix).append(turn.text).append(userSuffix)
            else append(assistantPrefix).append(turn.text).append(assistantSuffix)
        }
        append(generationPrefix)
    }
}
