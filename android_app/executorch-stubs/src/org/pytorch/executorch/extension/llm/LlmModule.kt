// Compile-only stub: the members mobq's Engine.kt may use, with the signatures of ExecuTorch
// 1.5's LlmModule.kt (extension/android/executorch_android/.../org/pytorch/executorch/extension/llm/,
// main cff6f4dd, version.txt 1.5.0; same at v1.4.1). `external`: declared, never implemented here.
package org.pytorch.executorch.extension.llm

import java.io.Closeable

class LlmModule(modulePath: String, tokenizerPath: String, temperature: Float) : Closeable {
    /** Returns nothing since 1.3; throws ExecutorchRuntimeException on failure. */
    external fun load()

    /** seqLen counts prompt + generated tokens. Returns nothing; throws ExecutorchRuntimeException. */
    external fun generate(prompt: String, seqLen: Int, llmCallback: LlmCallback, echo: Boolean)

    external fun resetContext()

    external fun stop()

    external override fun close()

    @Deprecated("Use close() instead", replaceWith = ReplaceWith("close()"))
    external fun resetNative()
}
