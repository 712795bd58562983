using ScottPlot;

namespace SharpTune.Classic;

/// <summary>Line charts of curves (ROC, precision-recall) as PNG files, with ScottPlot.</summary>
internal static class ReportPlots
{
    public static void Save(string path, string title, string xLabel, string yLabel,
        IReadOnlyList<(string Label, double[] X, double[] Y)> series, bool diagonal)
    {
        var plot = new Plot();
        foreach (var (label, x, y) in series)
        {
            var line = plot.Add.ScatterLine(x, y);
            line.LegendText = label;
            line.LineWidth = 2;
        }
        if (diagonal)
        {
            var chance = plot.Add.Line(0, 0, 1, 1);
            chance.LinePattern = LinePattern.Dashed;
            chance.Color = Colors.Gray;
            chance.LegendText = "chance";
        }
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        plot.Axes.SetLimits(0, 1, 0, 1.02);
        plot.ShowLegend(Alignment.LowerRight);
        IO.AtomicFile.WriteAllBytes(path, plot.GetImageBytes(640, 480, ImageFormat.Png));
    }
}
