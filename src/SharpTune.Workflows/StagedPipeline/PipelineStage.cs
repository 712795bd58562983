using static TorchSharp.torch;

namespace SharpTune.StagedPipeline;

/// <summary>
/// One step of the pipeline. A stage writes its whole output into the work directory it is given; the runner moves
/// that directory into place and then writes the completion marker, so an interrupted stage leaves nothing that looks
/// finished. <see cref="Requires"/> names the stages whose output it reads; <see cref="Uses"/> those it reads when
/// present (evaluation and export take whichever model variants exist).
/// </summary>
public abstract class PipelineStage
{
    /// <summary>The name used in <c>--stages</c>.</summary>
    public abstract string Name { get; }

    /// <summary>The stage's folder inside the output directory.</summary>
    public abstract string Folder { get; }

    public virtual IReadOnlyList<string> Requires => [];

    /// <summary>The required stages under these settings (a stage whose inputs depend on an option overrides it).</summary>
    public virtual IReadOnlyList<string> RequiresFor(PipelineSettings settings) => Requires;

    public virtual IReadOnlyList<string> Uses => [];

    /// <summary>The settings this stage's output depends on; a change re-runs the stage (and, through the inputs'
    /// fingerprints, every stage after it).</summary>
    public abstract object?[] SettingsFingerprint(PipelineSettings settings);

    /// <summary>Does the work into <paramref name="workDirectory"/> (empty, in the output folder) and returns details
    /// worth keeping in <c>pipeline.json</c> (losses, sizes), or null.</summary>
    public abstract IReadOnlyDictionary<string, object?>? Run(PipelineContext context, string workDirectory);
}

/// <summary>What a stage runs with: the settings, the output folder, the compute device and dtype, and where to
/// report progress and log lines.</summary>
public sealed class PipelineContext
{
    public required PipelineSettings Settings { get; init; }
    public required string OutputDirectory { get; init; }
    public Device Device { get; init; } = CPU;
    public ScalarType DType { get; init; } = ScalarType.Float32;
    /// <summary>Progress of the running stage: units done, total units, and an optional status (loss, lr).</summary>
    public Action<double, double, string?> ReportProgress { get; init; } = (_, _, _) => { };
    public Action<string> Log { get; init; } = _ => { };
    public CancellationToken Cancellation { get; init; }
    /// <summary>S3 credentials for the export upload (run-time only: never written to pipeline.json); null: the
    /// standard AWS environment variables and credential chain.</summary>
    public S3Credentials? S3Credentials { get; init; }
    /// <summary>Hugging Face token for the Hub upload (run-time only); null: the HF_TOKEN environment variable.</summary>
    public string? HubToken { get; init; }
    /// <summary>The Hub endpoint the user named for this run (never one read from pipeline.json): the token is sent only
    /// there, and the upload is refused when the saved settings name another. Null: HF_ENDPOINT, else huggingface.co.</summary>
    public string? HubEndpoint { get; init; }
    /// <summary>Export without uploading anywhere (S3 or the Hub), whatever the settings say.</summary>
    public bool SkipUpload { get; init; }

    internal Func<string, string?> CompletedFolder { get; init; } = _ => null;

    /// <summary>The folder of a completed stage, or null when that stage has not run.</summary>
    public string? OutputOf(string stage) => CompletedFolder(stage);

    public string RequireOutputOf(string stage) =>
        OutputOf(stage) ?? throw new InvalidOperationException($"{OutputDirectory}: the output of stage '{stage}' is missing");
}
