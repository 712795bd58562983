namespace SharpTune.Reporting;

/// <summary>Draws the PNG charts that reports include. The core library carries no drawing library: the
/// <c>SharpTune.Workflows</c> package provides a renderer (ScottPlot), installed by <c>SharpTuneWorkflows.Register()</c>.</summary>
public interface IChartRenderer
{
    /// <summary>Line charts of curves in the unit square (ROC, precision-recall), with the chance diagonal when asked.</summary>
    void SaveCurves(string path, string title, string xLabel, string yLabel,
        IReadOnlyList<(string Label, double[] X, double[] Y)> series, bool diagonal);

    /// <summary>Training and evaluation loss (and <paramref name="metricKey"/> when it is not a loss) on the left axis,
    /// learning rate on the right axis, against the optimizer step of each log entry.</summary>
    void SaveTrainingCurves(string path, IReadOnlyList<IReadOnlyDictionary<string, double>> history, string metricKey);
}

/// <summary>The renderer reports draw their charts with; without one, reports are written without charts.</summary>
public static class Charts
{
    private static IChartRenderer? _renderer;

    /// <summary>Set once at start-up (the <c>sharptune</c> CLI sets ScottPlot's); null leaves charts out.</summary>
    public static IChartRenderer? Renderer
    {
        get => Volatile.Read(ref _renderer);
        set => Volatile.Write(ref _renderer, value);
    }
}
