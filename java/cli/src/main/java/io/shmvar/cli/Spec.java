package io.shmvar.cli;

import com.google.protobuf.util.JsonFormat;
import io.shmvar.SharedMemoryVariable;
import io.shmvar.ShmException;
import io.shmvar.cli.spec.Command;
import io.shmvar.cli.spec.CommandLine;
import io.shmvar.cli.spec.Flag;
import io.shmvar.cli.spec.Grammar;
import io.shmvar.cli.spec.Positional;

import java.io.IOException;
import java.io.InputStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The command-line specification, {@code proto/cli/commands.json}, that go-peer follows too: the parser, the help
 * and the version line of both commands come from it. Go's twin is {@code go-peer/cmd/go-peer/spec.go}; the golden
 * parity test ({@code parity_test.go}) holds the two to the same bytes.
 */
final class Spec {
    private Spec() {
    }

    /** The specification, with each flag's ref replaced by the shared flag it names. */
    static final CommandLine SPEC = load();

    private static CommandLine load() {
        CommandLine.Builder b = CommandLine.newBuilder();
        try (InputStream in = Spec.class.getResourceAsStream("commands.json")) {
            if (in == null) {
                throw new IllegalStateException("commands.json is not in the jar");
            }
            JsonFormat.parser().merge(new String(in.readAllBytes(), StandardCharsets.UTF_8), b);
        } catch (IOException e) {
            throw new IllegalStateException("commands.json: " + e, e);
        }
        Map<String, Flag> shared = new HashMap<>();
        for (Flag f : b.getSharedFlagsList()) {
            shared.put(f.getName(), f);
        }
        for (Command.Builder c : b.getCommandsBuilderList()) {
            for (int i = 0; i < c.getFlagsCount(); i++) {
                String ref = c.getFlags(i).getRef();
                if (!ref.isEmpty()) {
                    if (!shared.containsKey(ref)) {
                        throw new IllegalStateException("commands.json: " + c.getName() + " refers to no shared flag " + ref);
                    }
                    c.setFlags(i, shared.get(ref));
                }
            }
        }
        return b.build();
    }

    static Command find(String name) {
        for (Command c : SPEC.getCommandsList()) {
            if (c.getName().equals(name)) {
                return c;
            }
        }
        return null;
    }

    /** A mistake on the command line: exit status 2, one line. */
    static final class UsageException extends RuntimeException {
        UsageException(String message) {
            super(message, null, false, false);
        }
    }

    /** -h or --help among a command's options. */
    static final class HelpRequested extends RuntimeException {
        HelpRequested() {
            super("help requested", null, false, false);
        }
    }

    /** A command line parsed against its command's specification. */
    static final class Parsed {
        final Command cmd;
        final Map<String, Boolean> given = new HashMap<>();
        final Map<String, Object> values = new HashMap<>();
        final List<String> args = new ArrayList<>();

        Parsed(Command cmd) {
            this.cmd = cmd;
        }

        boolean has(String name) {
            return given.containsKey(name);
        }

        String str(String name) {
            Object v = values.get(name);
            return v instanceof String s ? s : "";
        }

        long integer(String name) {
            Object v = values.get(name);
            return v instanceof Long n ? n : 0;
        }

        /** A duration, in nanoseconds. */
        long nanos(String name) {
            return integer(name);
        }

        boolean on(String name) {
            return Boolean.TRUE.equals(values.get(name));
        }

        int key(String name) {
            Object v = values.get(name);
            return v instanceof Integer k ? k : 0;
        }

        @SuppressWarnings("unchecked")
        List<String> list(String name) {
            Object v = values.get(name);
            return v instanceof List<?> l ? (List<String>) l : List.of();
        }
    }

    /**
     * Reads args as the specification says both commands do: GNU-style long options (--name value or --name=value)
     * anywhere among the positional arguments, -h as the one short option, "--" ending the options and "-" a
     * positional argument; then converts each given value in the order the command lists its flags, and checks the
     * groups, the required flags and the number of positional arguments. Go's twin: parseArgs.
     */
    static Parsed parse(Command c, List<String> args) {
        Parsed p = new Parsed(c);
        Map<String, Flag> byName = new HashMap<>();
        for (Flag f : c.getFlagsList()) {
            byName.put(f.getName(), f);
        }
        Map<String, List<String>> raw = new HashMap<>();
        boolean onlyPositional = false;
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (onlyPositional || a.equals("-") || !a.startsWith("-")) {
                p.args.add(a);
                continue;
            }
            if (a.equals("--")) {
                onlyPositional = true;
                continue;
            }
            if (a.equals("-h") || a.equals("--help")) {
                throw new HelpRequested();
            }
            if (!a.startsWith("--")) {
                if (byName.containsKey(a.substring(1))) {
                    throw new UsageException("unknown option " + quote(a) + " (did you mean --" + a.substring(1) + "?)");
                }
                throw new UsageException("unknown option " + quote(a));
            }
            String rest = a.substring(2);
            int eq = rest.indexOf('=');
            String name = eq < 0 ? rest : rest.substring(0, eq);
            String value = eq < 0 ? null : rest.substring(eq + 1);
            Flag f = byName.get(name);
            if (f == null) {
                throw new UsageException("unknown option " + quote("--" + name));
            }
            if (f.getType() == Flag.Type.SWITCH) {
                if (value != null) {
                    throw new UsageException("option --" + name + " takes no value");
                }
                value = "true";
            } else if (value == null) {
                if (i + 1 >= args.size()) {
                    throw new UsageException("option --" + name + " needs a value (" + f.getValue() + ")");
                }
                value = args.get(++i);
            }
            List<String> list = raw.computeIfAbsent(name, k -> new ArrayList<>());
            if (!list.isEmpty() && !f.getRepeated()) {
                throw new UsageException("option --" + name + " is given more than once");
            }
            list.add(value);
        }
        if (p.args.size() > c.getArgsCount()) {
            throw new UsageException("unexpected argument " + quote(p.args.get(c.getArgsCount())));
        }
        for (int i = 0; i < c.getArgsCount(); i++) {
            if (c.getArgs(i).getRequired() && i >= p.args.size()) {
                throw new UsageException("missing " + c.getArgs(i).getName());
            }
        }
        for (Flag f : c.getFlagsList()) {
            List<String> vals = raw.get(f.getName());
            if (vals == null) {
                if (!f.getDefault().isEmpty()) {
                    p.values.put(f.getName(), convert(f, f.getDefault()));
                } else if (f.getRepeated()) {
                    p.values.put(f.getName(), new ArrayList<String>());
                }
                continue;
            }
            p.given.put(f.getName(), true);
            List<String> converted = new ArrayList<>();
            for (String s : vals) {
                Object v = convert(f, s);
                if (f.getRepeated()) {
                    converted.add((String) v);
                    p.values.put(f.getName(), converted);
                } else {
                    p.values.put(f.getName(), v);
                }
            }
        }
        Map<String, List<Flag>> groups = new LinkedHashMap<>();
        for (Flag f : c.getFlagsList()) {
            if (!f.getGroup().isEmpty()) {
                groups.computeIfAbsent(f.getGroup(), k -> new ArrayList<>()).add(f);
            }
        }
        for (Map.Entry<String, List<Flag>> g : groups.entrySet()) {
            List<String> names = new ArrayList<>(), forms = new ArrayList<>(), given = new ArrayList<>();
            for (Flag f : g.getValue()) {
                names.add("--" + f.getName());
                forms.add("--" + f.getName() + " " + f.getValue());
                if (p.has(f.getName())) {
                    given.add(f.getName());
                }
            }
            if (given.size() > 1) {
                throw new UsageException("give " + String.join(" or ", names) + ", not both");
            }
            if (given.isEmpty() && c.getRequiredGroupsList().contains(g.getKey())) {
                throw new UsageException(String.join(" or ", forms) + " is required");
            }
        }
        for (Flag f : c.getFlagsList()) {
            if (f.getRequired() && !p.has(f.getName())) {
                throw new UsageException("--" + f.getName() + " " + f.getValue() + " is required");
            }
        }
        return p;
    }

    /** A string in double quotes, escaped as Go's %q escapes quotes, backslashes and ASCII control characters. */
    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case 7 -> b.append("\\a");
                case '\b' -> b.append("\\b");
                case '\f' -> b.append("\\f");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                case 11 -> b.append("\\v");
                default -> {
                    if (c < 0x20 || c == 0x7f) {
                        b.append(String.format("\\x%02x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    private static Grammar grammar(Flag.Type t) {
        for (Grammar g : SPEC.getGrammarsList()) {
            if (g.getType() == t) {
                return g;
            }
        }
        return Grammar.getDefaultInstance();
    }

    private static UsageException flagError(Flag f, String s, boolean rangeError) {
        Grammar g = grammar(f.getType());
        String t = rangeError ? g.getRangeError() : g.getError();
        String min = Long.toString(f.getMin()), max = Long.toString(intMax(f));
        if (f.getType() == Flag.Type.DURATION) {
            min = f.getPositive() ? "1ns" : "0s";
        }
        return new UsageException(t.replace("{flag}", "--" + f.getName()).replace("{value}", s).replace("{min}", min)
            .replace("{max}", max).replace("{choices}", orList(f.getChoicesList())));
    }

    private static long intMax(Flag f) {
        return f.getMax() == 0 ? Long.MAX_VALUE : f.getMax();
    }

    /** a, b or c. */
    static String orList(List<String> items) {
        if (items.size() < 2) {
            return String.join("", items);
        }
        return String.join(", ", items.subList(0, items.size() - 1)) + " or " + items.get(items.size() - 1);
    }

    /** Parses one value by its flag's type (commands.json, grammars). */
    static Object convert(Flag f, String s) {
        switch (f.getType()) {
            case SWITCH:
                return Boolean.TRUE;
            case STRING:
            case PATH:
                if (s.isEmpty()) {
                    throw flagError(f, s, false);
                }
                return s;
            case KEY:
                try {
                    return ShmException.parseKey(s); // the grammar both commands share
                } catch (ShmException e) {
                    throw flagError(f, s, false);
                }
            case DURATION:
                BigInteger d = parseDuration(s);
                if (d == null) {
                    throw flagError(f, s, false);
                }
                if (d.bitLength() > 63 || f.getPositive() && d.signum() == 0) {
                    throw flagError(f, s, true);
                }
                return d.longValue();
            case INT:
                if (s.isEmpty() || !s.chars().allMatch(c -> c >= '0' && c <= '9')) {
                    throw flagError(f, s, false);
                }
                BigInteger n = new BigInteger(s);
                if (n.bitLength() > 63 || n.longValue() < f.getMin() || n.longValue() > intMax(f)) {
                    throw flagError(f, s, true);
                }
                return n.longValue();
            case CHOICE:
                if (!f.getChoicesList().contains(s)) {
                    throw flagError(f, s, false);
                }
                return s;
            case OCTAL:
                if (s.isEmpty() || s.length() > 4 || !s.chars().allMatch(c -> c >= '0' && c <= '7')) {
                    throw flagError(f, s, false);
                }
                long mode = Long.parseLong(s, 8);
                if (mode < 1 || mode > 0777) {
                    throw flagError(f, s, true);
                }
                return mode;
            default:
                throw new IllegalStateException("commands.json: --" + f.getName() + " has no type");
        }
    }

    private static final String[] UNITS = {"ns", "us", "µs", "ms", "s", "m", "h"};
    private static final long[] UNIT_NANOS = {1, 1_000, 1_000, 1_000_000, 1_000_000_000, 60_000_000_000L, 3_600_000_000_000L};

    /**
     * Reads one or more of: digits, an optional fraction and a unit (1m30s, 1.5h, 200us), with no sign and no space,
     * exactly (the fraction's nanoseconds truncated); null for anything else. The total may exceed a long.
     */
    static BigInteger parseDuration(String s) {
        BigInteger total = BigInteger.ZERO;
        String rest = s;
        do {
            int i = 0;
            while (i < rest.length() && rest.charAt(i) >= '0' && rest.charAt(i) <= '9') {
                i++;
            }
            String whole = rest.substring(0, i), frac = "";
            if (i < rest.length() && rest.charAt(i) == '.') {
                int j = i + 1;
                while (j < rest.length() && rest.charAt(j) >= '0' && rest.charAt(j) <= '9') {
                    j++;
                }
                frac = rest.substring(i + 1, j);
                i = j;
            }
            if (whole.isEmpty() && frac.isEmpty()) {
                return null;
            }
            long unit = 0;
            for (int u = 0; u < UNITS.length; u++) { // the two-letter units first: 1ms is not 1m and s
                if (rest.startsWith(UNITS[u], i)) {
                    unit = UNIT_NANOS[u];
                    i += UNITS[u].length();
                    break;
                }
            }
            if (unit == 0) {
                return null;
            }
            BigInteger part = new BigInteger("0" + whole + frac).multiply(BigInteger.valueOf(unit))
                .divide(BigInteger.TEN.pow(frac.length()));
            total = total.add(part);
            rest = rest.substring(i);
        } while (!rest.isEmpty());
        return total;
    }

    /** What the command prints with no arguments (on stderr, exit 2) and for help: every command. */
    static String commandList(String program) {
        StringBuilder b = new StringBuilder();
        b.append("usage: ").append(program).append(" COMMAND [OPTIONS] [ARGUMENTS]\n");
        b.append("       ").append(program).append(" help COMMAND    (or ").append(program).append(" COMMAND --help)\n");
        b.append("       ").append(program).append(" --version\n\n").append(SPEC.getSummary()).append("\n\ncommands:\n");
        int width = 0;
        for (Command c : SPEC.getCommandsList()) {
            if (!c.getHidden()) {
                width = Math.max(width, c.getName().length());
            }
        }
        for (Command c : SPEC.getCommandsList()) {
            if (c.getHidden()) {
                continue;
            }
            String summary = c.getSummary();
            if (c.getOnlyCount() > 0) {
                summary += " (" + String.join(", ", c.getOnlyList()) + " only)";
            }
            b.append("  ").append(pad(c.getName(), width)).append("  ").append(summary).append('\n');
        }
        b.append("\nexit status:");
        for (int i = 0; i < SPEC.getExitCodesCount(); i++) {
            b.append(' ').append(SPEC.getExitCodes(i).getCode()).append(' ').append(SPEC.getExitCodes(i).getMeaning())
                .append(i == SPEC.getExitCodesCount() - 1 ? "." : ";");
        }
        return b.append('\n').toString();
    }

    private static String pad(String s, int width) {
        return s + " ".repeat(Math.max(0, width - s.length()));
    }

    /** What COMMAND --help and help COMMAND print. */
    static String commandHelp(String program, Command c) {
        StringBuilder b = new StringBuilder("usage: " + program + " " + c.getName());
        List<Flag> flags = c.getFlagsList();
        for (int i = 0; i < flags.size(); i++) {
            Flag f = flags.get(i);
            if (f.getHidden()) {
                continue;
            }
            if (!f.getGroup().isEmpty()) {
                String g = f.getGroup();
                List<String> forms = new ArrayList<>();
                for (; i < flags.size() && flags.get(i).getGroup().equals(g); i++) {
                    forms.add("--" + flags.get(i).getName() + " " + flags.get(i).getValue());
                }
                i--;
                boolean required = c.getRequiredGroupsList().contains(g);
                b.append(required ? " (" : " [").append(String.join(" | ", forms)).append(required ? ")" : "]");
                continue;
            }
            String form = "--" + f.getName() + (f.getType() != Flag.Type.SWITCH ? " " + f.getValue() : "");
            if (f.getRequired()) {
                b.append(' ').append(form);
            } else if (f.getRepeated()) {
                b.append(" [").append(form).append("]...");
            } else {
                b.append(" [").append(form).append(']');
            }
        }
        for (Positional a : c.getArgsList()) {
            b.append(a.getRequired() ? " " + a.getName() : " [" + a.getName() + "]");
        }
        b.append("\n\n").append(c.getDescription()).append('\n');
        if (c.getOnlyCount() > 0) {
            b.append("Only ").append(String.join(", ", c.getOnlyList())).append(" has this command.\n");
        }
        List<String[]> rows = new ArrayList<>();
        for (Flag f : flags) {
            if (f.getHidden()) {
                continue;
            }
            String left = "--" + f.getName() + (f.getType() != Flag.Type.SWITCH ? " " + f.getValue() : "");
            String right = f.getDescription();
            if (f.getRequired()) {
                right += " (required)";
            }
            if (!f.getDefault().isEmpty()) {
                right += " (default: " + f.getDefault() + ")";
            }
            rows.add(new String[] {left, right});
        }
        rows.add(new String[] {"-h, --help", "print this help"});
        int width = 0;
        for (String[] r : rows) {
            width = Math.max(width, r[0].length());
        }
        for (Positional a : c.getArgsList()) {
            width = Math.max(width, a.getName().length());
        }
        if (c.getArgsCount() > 0) {
            b.append("\narguments:\n");
            for (Positional a : c.getArgsList()) {
                b.append("  ").append(pad(a.getName(), width)).append("  ").append(a.getDescription()).append('\n');
            }
        }
        b.append("\noptions:\n");
        for (String[] r : rows) {
            b.append("  ").append(pad(r[0], width)).append("  ").append(r[1]).append('\n');
        }
        return b.toString();
    }

    /** What --version prints. */
    static String versionLine(String program) {
        return program + " " + SPEC.getVersion() + " (layout " + SharedMemoryVariable.formatVersion(SharedMemoryVariable.LAYOUT_VERSION)
            + ")\n";
    }
}
