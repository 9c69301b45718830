// Pure Kotlin/JVM: no Android imports, so it is compiled and unit-tested anywhere
// (`make android-core-test` builds the same sources with kotlinc and JUnit, without Gradle).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // org.json ships with Android; the app gets it from the platform at run time.
    compileOnly(libs.android.json)
    testImplementation(libs.android.json)
    testImplementation(libs.junit)
    testImplementation(libs.kotlin.test.junit)
}

tasks.test {
    // The golden files shared with the Python and Swift tests.
    systemProperty("mobq.golden", rootProject.file("../docs/schema/examples").absolutePath)
}
