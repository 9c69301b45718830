package dev.mobq.app

import dev.mobq.core.ModelManifest
import dev.mobq.core.PromptSet
import java.io.File

/**
 * An export on the phone: its folder and the manifest that names its files. No Android
 * imports: `make android-core-test` compiles it with Engine.kt (the engine layer).
 */
data class InstalledModel(val dir: File, val manifest: ModelManifest) {
    val programPath: String get() = File(dir, manifest.program.path).absolutePath
    val tokenizerPath: String get() = File(dir, manifest.tokenizer.path).absolutePath
    val label: String get() = "${manifest.modelName} · ${manifest.scheme} · ctx ${manifest.maxContextLen}"

    /** prompts.json from `mobq bundle` (with token counts) when present, else the default set. */
    fun promptSet(): PromptSet = File(dir, PromptSet.FILE_NAME).takeIf { it.isFile }?.let { PromptSet.parse(it.readText()) } ?: PromptSet.DEFAULT
}
