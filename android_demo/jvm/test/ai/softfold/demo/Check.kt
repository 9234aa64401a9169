package ai.softfold.demo

import java.io.File
import kotlin.system.exitProcess

/** A host test: a name and a body that throws on failure. No framework: `main` runs them all. */
class HostTest(val name: String, val body: () -> Unit)

class Failure(message: String) : AssertionError(message)

fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw Failure(message())
}

fun <T> checkEquals(expected: T, actual: T, what: String = "value") =
    check(expected == actual) { "$what:\n  expected ${show(expected)}\n  actual   ${show(actual)}" }

private fun show(value: Any?) = if (value is String) "\"" + value.replace("\n", "\\n") + "\"" else value.toString()

/** args: the fixtures file the Python side wrote (see tests/test_android_demo.py). */
fun main(args: Array<String>) {
    val fixtures = Fixtures.read(File(args.single()))
    val tests = ManifestTests(fixtures).all() + PromptTests(fixtures).all() + StopTests(fixtures).all() +
        BudgetTests(fixtures).all() + SessionTests(fixtures).all()
    var failed = 0
    for (test in tests) {
        try {
            test.body()
            println("PASS ${test.name}")
        } catch (e: Throwable) {
            failed += 1
            println("FAIL ${test.name}: ${if (e is Failure) e.message else e.stackTraceToString()}")
        }
    }
    println("${tests.size - failed} passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
