package io.shmvar;

import org.HdrHistogram.Histogram;

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
