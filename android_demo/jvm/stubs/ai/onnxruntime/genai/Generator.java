// Signature-only stub for compiling the app on the host JVM; the real class ships in the
// onnxruntime-genai-android AAR. Mirrors microsoft/onnxruntime-genai
// src/java/src/main/java/ai/onnxruntime/genai/Generator.java at a0c04eb1 (the newest source
// available here; its public API matches the 0.18.0 AAR the app uses): only the members the app calls.
package ai.onnxruntime.genai;

public final class Generator implements AutoCloseable {
  public Generator(Model model, GeneratorParams generatorParams) throws GenAIException {
    throw Stub.missing();
  }

  public boolean isDone() {
    throw Stub.missing();
  }

  public void appendTokenSequences(Sequences sequences) throws GenAIException {
    throw Stub.missing();
  }

  public void generateNextToken() throws GenAIException {
    throw Stub.missing();
  }

  public int getLastTokenInSequence(long sequenceIndex) throws GenAIException {
    throw Stub.missing();
  }

  @Override
  public void close() {
    throw Stub.missing();
  }
}
