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
    // The runtimes softfold validates bundles against (see ../README.md): keep in step with
    // executorch 1.5.x and onnxruntime-genai 0.18 on the host.
    implementation("org.pytorch:executorch-android:1.5.1")
    implementation("com.microsoft.onnxruntime:onnxruntime-genai-android:0.18.0")
    implementation("com.microsoft.onnxruntime:onnxruntime-android:1.24.2")
    implementation("com.facebook.soloader:soloader:0.10.5")
    implementation("com.facebook.fbjni:fbjni:0.5.1")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}
