# Per-request overhead by system, a bar chart. scripts/bench/report.py calls it as
#   gnuplot -e "datafile='overhead.dat'; outfile='benches/overhead.png'; subtitle='…'; \
#               heading='…'; target=0.4; targetlabel='…'" scripts/bench/overhead.gp
# datafile columns (tab-separated): label, overhead in µs, colour (0xRRGGBB), value label.
# heading (the title's first line), target (a dashed line at that many µs) and targetlabel are
# optional.
set terminal pngcairo size 1000,520 font "DejaVu Sans,10" enhanced
set output outfile
set datafile separator "\t"
if (!exists("heading")) {
    heading = "Per-request overhead over a bare axum route (criterion median, in-process oneshot)"
}
set title heading."\n{/*0.8 ".subtitle."}"
set ylabel "overhead over bare (µs)"
set style fill solid 0.85 border rgb "#333333"
set boxwidth 0.65
set grid ytics lc rgb "#dddddd"
set border 3
set xtics nomirror scale 0 font ",9"
set ytics nomirror
set yrange [0:*]
set offsets 0.5, 0.5, graph 0.12, 0
set key off
set bmargin 5
if (exists("target")) {
    if (!exists("targetlabel")) {
        targetlabel = sprintf("issue 5 target for a valid session: %.1f µs", target)
    }
    set arrow 1 from graph 0, first target to graph 1, first target nohead dt 2 lw 1.5 lc rgb "#228833" back
    set label 1 "- - -  ".targetlabel at graph 0.02, graph 0.95 tc rgb "#228833" font ",9" front
}
plot datafile using 0:2:3:xtic(1) with boxes lc rgb variable, \
     '' using 0:2:4 with labels offset 0,0.8 font ",9"
