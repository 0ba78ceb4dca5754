/*
 * Makes a running JVM run out of heap for real: attached as an agent, it allocates 1 MiB arrays and keeps them
 * until the heap is full. tests/integration/test_stack.py attaches it to the TaskManager.
 *
 *   javac -d out HeapFiller.java && jar --create --file heap-filler.jar --manifest MANIFEST.MF -C out .
 *   java -cp heap-filler.jar HeapFiller <pid>
 */
import com.sun.tools.attach.VirtualMachine;
import java.io.File;
import java.util.ArrayList;
import java.util.List;

public final class HeapFiller {
    private static final List<long[]> HELD = new ArrayList<>();

    private HeapFiller() {}

    /** Runs inside the target JVM: a thread that never releases what it allocates. */
    public static void agentmain(String args) {
        Thread filler = new Thread(() -> {
            while (true) {
                HELD.add(new long[1 << 17]);
            }
        }, "heap-filler");
        filler.setDaemon(true);
        filler.start();
    }

    /** Attaches this jar to the JVM whose process id is the first argument. */
    public static void main(String[] args) throws Exception {
        String jar = new File(HeapFiller.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getPath();
        VirtualMachine vm = VirtualMachine.attach(args[0]);
        try {
            vm.loadAgent(jar);
        } finally {
            try {
                vm.detach();
            } catch (java.io.IOException gone) {
                // the target may already have ended: that is what the agent is for
            }
        }
    }
}
