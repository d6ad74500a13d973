# Overhead against live sessions, one line per system. scripts/bench/report.py calls it as
#   gnuplot -e "datafile='scaling.dat'; outfile='benches/scaling.png'; subtitle='…'; n=5; \
#               t1='…'; …; t5='…'; colours='0x… …'" scripts/bench/scaling.gp
# datafile: n blocks, one per system, separated by two blank lines; block i is titled ti and
# drawn in the i-th of colours; columns (tab-separated): live sessions, overhead over bare (µs).
set terminal pngcairo size 1000,600 font "DejaVu Sans,10" enhanced
set output outfile
set datafile separator "\t"
set title "Per-request overhead against live sessions: distinct users, a different cookie on every request\n{/*0.8 (criterion median − bare at the same size, in-process oneshot); ".subtitle."}"
set xlabel "live sessions (log scale)"
set ylabel "overhead over bare (µs)"
set logscale x 10
set format x "10^{%L}"
set xrange [500:2000000]
set yrange [0:*]
set grid xtics ytics lc rgb "#dddddd"
set border 3
set xtics nomirror
set ytics nomirror
set key below horizontal noenhanced
plot for [i=1:n] datafile index (i - 1) using 1:2 with linespoints lw 2 pt 7 ps 1.1 \
     lc rgb word(colours, i) title value(sprintf("t%d", i))
