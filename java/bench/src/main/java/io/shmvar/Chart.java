package io.shmvar;

import org.HdrHistogram.Histogram;

import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Draws latency percentiles of several transports as one SVG line chart with a logarithmic time axis. */
final class Chart {
    private static final double[] PERCENTILES = {50, 90, 99, 99.9, 99.99, 100};
    private static final String[] LABELS = {"p50", "p90", "p99", "p99.9", "p99.99", "max"};
    private static final String[] COLOURS = {"#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"};
    private static final int WIDTH = 760, HEIGHT = 440, LEFT = 80, RIGHT = 200, TOP = 40, BOTTOM = 50;

    private Chart() {
    }

    static String svg(Map<String, Histogram> series, String title) {
        double lo = Double.MAX_VALUE, hi = 1;
        for (Histogram h : series.values()) {
            for (double p : PERCENTILES) {
                double v = Math.max(1, h.getValueAtPercentile(p));
                lo = Math.min(lo, v);
                hi = Math.max(hi, v);
            }
        }
        double logLo = Math.floor(Math.log10(lo)), logHi = Math.ceil(Math.log10(hi));
        if (logHi <= logLo) {
            logHi = logLo + 1;
        }
        int plotW = WIDTH - LEFT - RIGHT, plotH = HEIGHT - TOP - BOTTOM;
        StringBuilder s = new StringBuilder();
        s.append(String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            + "font-family=\"sans-serif\" font-size=\"12\">%n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>%n",
            WIDTH, HEIGHT));
        s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"22\" font-size=\"14\">%s</text>%n", LEFT, escape(title)));
        for (double e = logLo; e <= logHi; e++) {
            double y = TOP + plotH - (e - logLo) / (logHi - logLo) * plotH;
            s.append(String.format(Locale.ROOT, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                + "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>%n", LEFT, LEFT + plotW, y, y, LEFT - 6,
                y + 4, duration(Math.pow(10, e))));
        }
        for (int i = 0; i < PERCENTILES.length; i++) {
            double x = LEFT + i * plotW / (PERCENTILES.length - 1.0);
            s.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>%n", x,
                TOP + plotH + 20, LABELS[i]));
        }
        int k = 0;
        for (var e : series.entrySet()) {
            String colour = COLOURS[k % COLOURS.length];
            StringBuilder points = new StringBuilder();
            for (int i = 0; i < PERCENTILES.length; i++) {
                double v = Math.max(1, e.getValue().getValueAtPercentile(PERCENTILES[i]));
                double x = LEFT + i * plotW / (PERCENTILES.length - 1.0);
                double y = TOP + plotH - (Math.log10(v) - logLo) / (logHi - logLo) * plotH;
                points.append(String.format(Locale.ROOT, "%.1f,%.1f ", x, y));
                s.append(String.format(Locale.ROOT, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>%n", x, y,
                    colour));
            }
            s.append(String.format(Locale.ROOT, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                + "points=\"%s\"/>%n", colour, points.toString().strip()));
            double ly = TOP + 10 + k * 20;
            s.append(String.format(Locale.ROOT, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                + "stroke-width=\"3\"/><text x=\"%d\" y=\"%.1f\">%s</text>%n", LEFT + plotW + 15, LEFT + plotW + 35, ly,
                ly, colour, LEFT + plotW + 40, ly + 4, escape(e.getKey())));
            k++;
        }
        s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">percentile (round trip; "
            + "acquire for contended)</text>%n", LEFT + plotW / 2, HEIGHT - 10));
        return s.append("</svg>\n").toString();
    }

    /** The size_scaling series: key in a row, label, colour; each drawn solid for "bytes" and dashed for "fields". */
    private static final String[][] SIZE_SERIES = {
        {"java_update_ns", "Java update", "#1b9e77"},
        {"java_get_uncached_ns", "Java get, uncached", "#66a61e"},
        {"java_floor_ns", "Java copy+CRC32C floor", "#999999"},
        {"go_update_ns", "Go update", "#d95f02"},
        {"go_get_uncached_ns", "Go get, uncached", "#e7298a"},
        {"go_floor_ns", "Go copy+CRC32C floor", "#333333"},
    };

    /**
     * Draws cost against value size on log-log axes: each language's update and uncached get for the one-bytes-field
     * shape (solid) and the many-small-fields shape (dashed), beside the floor of copying the bytes once and computing
     * their CRC32C (drawn for the bytes shape: it depends on the size only).
     */
    static String sizeSvg(List<Map<String, Object>> rows, String title) {
        double xLo = Double.MAX_VALUE, xHi = 0, lo = Double.MAX_VALUE, hi = 1;
        for (Map<String, Object> row : rows) {
            double bytes = ((Number) row.get("bytes")).doubleValue();
            xLo = Math.min(xLo, bytes);
            xHi = Math.max(xHi, bytes);
            for (String[] s : SIZE_SERIES) {
                double v = Math.max(1, ((Number) row.get(s[0])).doubleValue());
                lo = Math.min(lo, v);
                hi = Math.max(hi, v);
            }
        }
        double logLo = Math.floor(Math.log10(lo)), logHi = Math.ceil(Math.log10(hi));
        double xlLo = Math.log(xLo), xlHi = Math.max(Math.log(xHi), xlLo + 1);
        int plotW = WIDTH - LEFT - RIGHT, plotH = HEIGHT - TOP - BOTTOM;
        StringBuilder s = new StringBuilder();
        s.append(String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            + "font-family=\"sans-serif\" font-size=\"12\">%n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>%n",
            WIDTH, HEIGHT));
        s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"22\" font-size=\"14\">%s</text>%n", LEFT, escape(title)));
        for (double e = logLo; e <= logHi; e++) {
            double y = TOP + plotH - (e - logLo) / (logHi - logLo) * plotH;
            s.append(String.format(Locale.ROOT, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                + "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>%n", LEFT, LEFT + plotW, y, y, LEFT - 6,
                y + 4, duration(Math.pow(10, e))));
        }
        java.util.TreeSet<Double> sizes = new java.util.TreeSet<>();
        rows.forEach(r -> sizes.add(((Number) r.get("bytes")).doubleValue()));
        for (double bytes : sizes) {
            double x = LEFT + (Math.log(bytes) - xlLo) / (xlHi - xlLo) * plotW;
            s.append(String.format(Locale.ROOT, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>"
                + "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>%n", x, x, TOP, TOP + plotH, x,
                TOP + plotH + 20, size(bytes)));
        }
        int k = 0;
        for (String[] series : SIZE_SERIES) {
            for (String shape : List.of("bytes", "fields")) {
                if (series[0].endsWith("floor_ns") && shape.equals("fields")) {
                    continue;
                }
                StringBuilder points = new StringBuilder();
                for (Map<String, Object> row : rows) {
                    if (!shape.equals(row.get("shape"))) {
                        continue;
                    }
                    double v = Math.max(1, ((Number) row.get(series[0])).doubleValue());
                    double x = LEFT + (Math.log(((Number) row.get("bytes")).doubleValue()) - xlLo) / (xlHi - xlLo) * plotW;
                    double y = TOP + plotH - (Math.log10(v) - logLo) / (logHi - logLo) * plotH;
                    points.append(String.format(Locale.ROOT, "%.1f,%.1f ", x, y));
                    s.append(String.format(Locale.ROOT, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>%n", x, y,
                        series[2]));
                }
                s.append(String.format(Locale.ROOT, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s "
                    + "points=\"%s\"/>%n", series[2], shape.equals("fields") ? " stroke-dasharray=\"6,4\"" : "",
                    points.toString().strip()));
            }
            double ly = TOP + 10 + k * 20;
            s.append(String.format(Locale.ROOT, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                + "stroke-width=\"3\"/><text x=\"%d\" y=\"%.1f\">%s</text>%n", LEFT + plotW + 15, LEFT + plotW + 35, ly,
                ly, series[2], LEFT + plotW + 40, ly + 4, escape(series[1])));
            k++;
        }
        double ly = TOP + 10 + (k + 1) * 20;
        s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%.1f\">solid: one bytes field</text>%n"
            + "<text x=\"%d\" y=\"%.1f\">dashed: many small fields</text>%n", LEFT + plotW + 15, ly, LEFT + plotW + 15,
            ly + 20));
        s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">encoded value size "
            + "(time per operation, median)</text>%n", LEFT + plotW / 2, HEIGHT - 10));
        return s.append("</svg>\n").toString();
    }

    private static String size(double bytes) {
        if (bytes >= 1 << 20) {
            return String.format(Locale.ROOT, "%.0f MiB", bytes / (1 << 20));
        }
        if (bytes >= 1 << 10) {
            return String.format(Locale.ROOT, "%.0f KiB", bytes / (1 << 10));
        }
        return String.format(Locale.ROOT, "%.0f B", bytes);
    }

    private static String duration(double ns) {
        if (ns >= 1e9) {
            return String.format(Locale.ROOT, "%.0f s", ns / 1e9);
        }
        if (ns >= 1e6) {
            return String.format(Locale.ROOT, "%.0f ms", ns / 1e6);
        }
        if (ns >= 1e3) {
            return String.format(Locale.ROOT, "%.0f µs", ns / 1e3);
        }
        return String.format(Locale.ROOT, "%.0f ns", ns);
    }

    private static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    }
}
