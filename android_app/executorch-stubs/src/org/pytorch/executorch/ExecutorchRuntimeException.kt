// Compile-only stub: signatures of ExecuTorch 1.5's ExecutorchRuntimeException.kt
// (extension/android/executorch_android/.../org/pytorch/executorch/, main cff6f4dd, version.txt 1.5.0;
// same at v1.4.1). No behaviour; see ../../../../README.md.
package org.pytorch.executorch

/** Thrown by LlmModule.load()/generate() on a non-zero runtime error (runtime/core/error.h codes). */
open class ExecutorchRuntimeException(val errorCode: Int, details: String?) : RuntimeException()
