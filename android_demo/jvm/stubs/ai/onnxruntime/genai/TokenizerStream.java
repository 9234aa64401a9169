// Signature-only stub for compiling the app on the host JVM; the real class ships in the
// onnxruntime-genai-android AAR. Mirrors microsoft/onnxruntime-genai
// src/java/src/main/java/ai/onnxruntime/genai/TokenizerStream.java at a0c04eb1 (the newest source
// available here; its public API matches the 0.18.0 AAR the app uses): only the members the app calls.
package ai.onnxruntime.genai;

public class TokenizerStream implements AutoCloseable {
  public String decode(int token) throws GenAIException {
    throw Stub.missing();
  }

  @Override
  public void close() {
    throw Stub.missing();
  }
}
