using ScottPlot;
using SharpTune.IO;
using SharpTune.Reporting;

namespace SharpTune.Workflows.Charts;

/// <summary>Report charts (ROC and precision-recall curves, training curves) as PNG files, with ScottPlot.</summary>
public sealed class ScottPlotCharts : IChartRenderer
{
    public void SaveCurves(string path, string title, string xLabel, string yLabel,
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
        var bytes = plot.GetImageBytes(640, 480, ImageFormat.Png);
        AtomicFile.Write(path, stream => stream.Write(bytes));
    }

    public void SaveTrainingCurves(string path, IReadOnlyList<IReadOnlyDictionary<string, double>> history, string metricKey)
    {
        var plot = new Plot();
        void AddSeries(string key, string legend, bool rightAxis)
        {
            var points = history.Where(h => h.ContainsKey(key) && h.ContainsKey("step")).ToList();
            if (points.Count == 0)
                return;
            var scatter = plot.Add.Scatter(points.Select(p => p["step"]).ToArray(), points.Select(p => p[key]).ToArray());
            scatter.LegendText = legend;
            scatter.MarkerSize = points.Count > 50 ? 0 : 4;
            if (rightAxis)
                scatter.Axes.YAxis = plot.Axes.Right;
        }
        AddSeries("loss", "train loss", false);
        AddSeries("eval_loss", "eval loss", false);
        if (metricKey != "eval_loss" && !metricKey.Contains("loss", StringComparison.Ordinal))
            AddSeries(metricKey, metricKey, false);
        AddSeries("learning_rate", "learning rate (right axis)", true);
        plot.XLabel("optimizer step");
        plot.YLabel("loss / metric");
        plot.Axes.Right.Label.Text = "learning rate";
        plot.ShowLegend();
        var bytes = plot.GetImageBytes(900, 500, ImageFormat.Png);
        AtomicFile.Write(path, stream => stream.Write(bytes));
    }
}
