using SharpTune.Data;
using SharpTune.Workflows.Charts;
using SharpTune.Workflows.Data;

namespace SharpTune.Workflows;

/// <summary>Plugs this package's pieces into the core library: PNG charts in reports (ScottPlot) and Parquet data
/// files (Parquet.Net). The staged pipeline (<c>SharpTune.StagedPipeline</c>) needs no registration.</summary>
public static class SharpTuneWorkflows
{
    /// <summary>Call once at start-up; calling again changes nothing.</summary>
    public static void Register()
    {
        SharpTune.Reporting.Charts.Renderer ??= new ScottPlotCharts();
        DatasetLoader.UseParquetReader(ParquetDatasetReader.Read);
    }
}
