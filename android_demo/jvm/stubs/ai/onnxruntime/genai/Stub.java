// Not upstream: what every host stub throws if called.
package ai.onnxruntime.genai;

final class Stub {
  static UnsupportedOperationException missing() {
    return new UnsupportedOperationException("host stub: the real class is in the onnxruntime-genai-android AAR");
  }
}
