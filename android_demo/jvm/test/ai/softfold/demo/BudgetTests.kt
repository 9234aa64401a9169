package ai.softfold.demo

import org.json.JSONObject
import java.io.File

/** ContextBudget and the ExecuTorch token bound on real bundles; the Python side re-counts the trimmed
 *  prompts this writes with the real tokenizer. */
class BudgetTests(private val fixtures: Fixtures) {
    private val budgetBundles = listOf("executorch-prefix-kv", "executorch-virtual-tokens")

    fun all() = listOf(
        HostTest("token bound is at least the tokenizer's count") { boundCoversRealCounts() },
    ) + budgetBundles.map { name ->
        HostTest("over-long conversation trimmed to the context: $name") { trimmed(name) }
    } + listOf(
        HostTest("short conversation kept whole") { shortKept() },
        HostTest("one message longer than the context is refused") { tooLong() },
    )

    private fun bound(bundle: String) =
        TokenUpperBound(ExecuTorchEngine.specialTokens(File(fixtures.bundle(bundle), "tokenizer.json").readText()))

    private fun boundCoversRealCounts() {
        check(fixtures.tokenCounts.size >= 4) { "too few token counts: ${fixtures.tokenCounts.size}" }
        for (count in fixtures.tokenCounts) {
            val bound = bound(count.bundle)(count.text)
            check(bound >= count.tokens) { "${count.bundle}: bound $bound < ${count.tokens} tokens for ${count.text}" }
        }
    }

    private fun conversation(exchanges: Int) = (1..exchanges).flatMap { i ->
        listOf(PromptFormat.Turn(true, "Q$i: the sea?"), PromptFormat.Turn(false, "A$i: it is wide."))
    } + PromptFormat.Turn(true, "Last: what did I ask first?")

    private fun trimmed(name: String) {
        val manifest = fixtures.manifest(name)
        val count = bound(name)
        val budget = ContextBudget(manifest.prompt, manifest.contextLength, count)
        val turns = conversation(12)
        val maxNewTokens = 32
        val limit = manifest.contextLength - maxNewTokens
        check(count(manifest.prompt.render(turns)) > manifest.contextLength) { "conversation is not over-long" }
        val fit = budget.fit(turns, maxNewTokens)
        check(fit is Fit.Prompt) { "$fit" }
        fit as Fit.Prompt
        check(fit.droppedTurns > 0 && fit.droppedTurns % 2 == 0) { "dropped ${fit.droppedTurns} turns" }
        check(fit.droppedTurns < turns.size - 1) { "kept only the new message: ${fit.text}" }
        checkEquals(manifest.prompt.render(turns.drop(fit.droppedTurns)), fit.text, "prompt")
        check(fit.tokens <= limit) { "${fit.tokens} tokens > $limit" }
        check(count(manifest.prompt.render(turns.drop(fit.droppedTurns - 2))) > limit) { "trimmed more than needed" }
        check(fit.text.endsWith("Last: what did I ask first?" + manifest.prompt.userSuffix + manifest.prompt.generationPrefix)) { fit.text }
        File(fixtures.out, "trimmed-$name.json").writeText(
            JSONObject().put("bundle", name).put("prompt", fit.text).put("max_new_tokens", maxNewTokens).toString())
    }

    private fun shortKept() {
        val manifest = fixtures.manifest("executorch-prefix-kv")
        val budget = ContextBudget(manifest.prompt, manifest.contextLength, bound("executorch-prefix-kv"))
        val turns = listOf(PromptFormat.Turn(true, "Hi"), PromptFormat.Turn(false, "Hello!"), PromptFormat.Turn(true, "Bye"))
        val fit = budget.fit(turns, 32)
        check(fit is Fit.Prompt && fit.droppedTurns == 0 && fit.text == manifest.prompt.render(turns)) { "$fit" }
    }

    private fun tooLong() {
        val manifest = fixtures.manifest("executorch-virtual-tokens")
        val budget = ContextBudget(manifest.prompt, manifest.contextLength, bound("executorch-virtual-tokens"))
        val fit = budget.fit(listOf(PromptFormat.Turn(true, "x".repeat(manifest.contextLength))), 32)
        check(fit is Fit.TooLong && fit.limit == manifest.contextLength - 32) { "$fit" }
    }
}
