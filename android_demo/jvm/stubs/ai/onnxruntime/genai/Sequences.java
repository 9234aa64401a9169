// Signature-only stub for compiling the app on the host JVM; the real class ships in the
// onnxruntime-genai-android AAR. Mirrors microsoft/onnxruntime-genai
// src/java/src/main/java/ai/onnxruntime/genai/Sequences.java at a0c04eb1 (the newest source
// available here; its public API matches the 0.18.0 AAR the app uses): only the members the app calls.
package ai.onnxruntime.genai;

public final class Sequences implements AutoCloseable {
  public long numSequences() {
    throw Stub.missing();
  }

  public int[] getSequence(long sequenceIndex) {
    throw Stub.missing();
  }

  @Override
  public void close() {
    throw Stub.missing();
  }
}
