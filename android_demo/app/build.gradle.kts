plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "ai.softfold.demo"
    compileSdk = 35
    defaultConfig {
        applicationId = "ai.softfold.demo"
        minSdk = 28
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        ndk { abiFilters += listOf("arm64-v8a") }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
}

dependencies {
    // The runtimes softfold's parity gate ran on the host (see ../README.md, "Versions").
    // ExecuTorch brings its own fbjni and soloader.
    implementation("org.pytorch:executorch-android:1.5.1")
    // ORT GenAI's Android AAR is not on Maven Central: put the release's
    // onnxruntime-genai-android-0.18.0.aar into app/libs/ (../README.md). A local AAR brings no
    // dependencies, so the ONNX Runtime it runs on is named here.
    implementation(files("libs/onnxruntime-genai-android-0.18.0.aar"))
    implementation("com.microsoft.onnxruntime:onnxruntime-android:1.32.0")
}
