package ai.softfold.demo

/** PromptFormat.render against the chat template itself, on real bundles of both folding modes. */
class PromptTests(private val fixtures: Fixtures) {
    fun all() = fixtures.chatTemplates.mapIndexed { i, case ->
        HostTest("prompt format equals chat template: ${case.bundle}, ${case.turns.size} turns (#$i)") {
            checkEquals(case.expected, fixtures.manifest(case.bundle).prompt.render(case.turns), "prompt")
        }
    } + HostTest("virtual-token bundle's prompts start with its virtual tokens") { virtualTokensLead() }

    private fun virtualTokensLead() {
        val manifest = fixtures.manifest("executorch-virtual-tokens")
        checkEquals("virtual-tokens", manifest.folding, "folding")
        val virtual = (0 until manifest.softPromptTokens).joinToString("") { "<|softfold_virtual_$it|>" }
        val prompt = manifest.prompt.render(listOf(PromptFormat.Turn(true, "Hi")))
        check(prompt.startsWith(virtual)) { prompt }
    }
}
