plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

android {
    namespace = "dev.mobq.app"
    compileSdk = libs.versions.compileSdk.get().toInt()

    defaultConfig {
        applicationId = "dev.mobq.app" // DeviceContract.PACKAGE; `mobq device android` uses it
        minSdk = libs.versions.minSdk.get().toInt()
        targetSdk = libs.versions.targetSdk.get().toInt()
        versionCode = 1
        versionName = "0.1.0"
        // ExecuTorch's AAR ships arm64-v8a and x86_64; phones are arm64.
        ndk { abiFilters += listOf("arm64-v8a") }
        buildConfigField("String", "EXECUTORCH_VERSION", "\"${libs.versions.executorch.get()}\"")
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            // A sample app: signed with the debug key so `assembleRelease` installs as is.
            signingConfig = signingConfigs.getByName("debug")
        }
    }

    buildFeatures { buildConfig = true }

    // model.pte is mmapped by the runtime: keep it uncompressed in the APK.
    androidResources { noCompress += listOf("pte") }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    implementation(project(":core"))
    implementation(libs.executorch.android)
}
