// Compile-only stub: signatures of ExecuTorch 1.5's LlmCallback.kt
// (extension/android/executorch_android/.../org/pytorch/executorch/extension/llm/, main cff6f4dd,
// version.txt 1.5.0; same at v1.4.1). onStats and onError have empty defaults there too.
package org.pytorch.executorch.extension.llm

interface LlmCallback {
    fun onResult(result: String)

    fun onStats(stats: String) {}

    fun onError(errorCode: Int, message: String) {}
}
