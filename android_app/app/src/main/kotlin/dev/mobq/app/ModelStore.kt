package dev.mobq.app

import android.content.Context
import dev.mobq.core.ContractError
import dev.mobq.core.DeviceContract
import dev.mobq.core.ModelManifest
import dev.mobq.core.PromptSet
import java.io.File

/**
 * Finds models: the one `mobq bundle android` put in the APK's assets (copied out once,
 * because the runtime needs a file path) and any that `mobq device android push` put in the
 * app's external files dir. File names always come from each model's manifest.
 */
class ModelStore(private val context: Context) {
    private val pushedRoot: File? get() = context.getExternalFilesDir(DeviceContract.MODELS_DIR)

    fun all(): List<InstalledModel> =
        listOfNotNull(bundled()) + (pushedRoot?.listFiles()?.filter { it.isDirectory }?.sortedBy { it.name }?.mapNotNull(::openOrNull) ?: emptyList())

    fun open(dir: File): InstalledModel {
        val manifestFile = File(dir, ModelManifest.FILE_NAME)
        if (!manifestFile.isFile) throw ContractError("no ${ModelManifest.FILE_NAME} in $dir; push an export with `mobq device android push`")
        val manifest = ModelManifest.parse(manifestFile.readText())
        for (file in manifest.files) {
            val local = File(dir, file.path)
            if (local.length() != file.bytes) {
                throw ContractError("$local has ${local.length()} bytes, the manifest says ${file.bytes}: push the export again")
            }
        }
        return InstalledModel(dir, manifest)
    }

    private fun openOrNull(dir: File): InstalledModel? = runCatching { open(dir) }.getOrNull()

    /** assets/model (from `mobq bundle android`) copied to filesDir/bundled when it changed. */
    private fun bundled(): InstalledModel? {
        val assets = context.assets
        val names = assets.list(ASSET_DIR)?.toSet() ?: return null
        if (ModelManifest.FILE_NAME !in names) return null
        val manifestText = assets.open("$ASSET_DIR/${ModelManifest.FILE_NAME}").use { it.readBytes().decodeToString() }
        val manifest = ModelManifest.parse(manifestText)
        val target = File(context.filesDir, "bundled")
        val stamp = File(target, ".sha256")
        if (!stamp.isFile || stamp.readText() != manifest.program.sha256) {
            val staging = File(context.filesDir, "bundled.part").apply { deleteRecursively(); mkdirs() }
            for (file in manifest.files) {
                assets.open("$ASSET_DIR/${file.path}").use { input -> File(staging, file.path).outputStream().use { input.copyTo(it) } }
            }
            if (PromptSet.FILE_NAME in names) {
                assets.open("$ASSET_DIR/${PromptSet.FILE_NAME}").use { input -> File(staging, PromptSet.FILE_NAME).outputStream().use { input.copyTo(it) } }
            }
            File(staging, ModelManifest.FILE_NAME).writeText(manifestText)
            File(staging, ".sha256").writeText(manifest.program.sha256)
            target.deleteRecursively()
            if (!staging.renameTo(target)) throw ContractError("could not move the bundled model into $target")
        }
        return open(target)
    }

    companion object {
        const val ASSET_DIR = "model" // android_app/app/src/main/assets/model (mobq.bundle.MODEL_SUBDIR)
    }
}
