package dev.mobq.core

import org.junit.Test
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertTrue

class TokenBudgetTest {
    @Test
    fun firstRunUsesTheBundledTokenCountNotTheCharacters() {
        val lengths = PromptLengths(contextLen = 512)
        val rendered = "<|im_start|>user\nWhy is the sky blue?<|im_end|>\n<|im_start|>assistant\n"
        // prompts.json says 25 tokens: prompt + 64 new, not 70 characters + 64.
        assertEquals(25 + 64, lengths.seqLen(rendered, 64, bundled = 25))
    }

    @Test
    fun theRunnersOwnCountWinsOnceKnown() {
        val lengths = PromptLengths(contextLen = 512)
        lengths.record("p", 27)
        assertEquals(27 + 64, lengths.seqLen("p", 64, bundled = 25))
        assertEquals(27, lengths.known("p", bundled = 25))
    }

    @Test
    fun unknownLengthMeansTheWholeContextAndNeverMoreThanIt() {
        val lengths = PromptLengths(contextLen = 128)
        assertEquals(128, lengths.seqLen("p", 64, bundled = null))
        assertEquals(128, lengths.seqLen("p", 64, bundled = 100))
    }

    @Test
    fun budgetIsSpentAtExactlyMaxNewTokens() {
        val budget = TokenBudget(3)
        assertFalse(budget.onToken())
        assertFalse(budget.onToken())
        assertTrue(budget.onToken())
        assertEquals(3, budget.received)
    }
}
