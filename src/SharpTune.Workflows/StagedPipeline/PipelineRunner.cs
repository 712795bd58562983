using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.IO;

namespace SharpTune.StagedPipeline;

/// <summary>How a stage ended in this run.</summary>
public enum StageOutcome
{
    Ran,
    /// <summary>Its output was already complete with the same settings and inputs.</summary>
    AlreadyDone,
}

public sealed record StageRun(string Stage, StageOutcome Outcome, double Seconds, string Folder);

/// <summary>
/// Runs the selected stages in pipeline order on one output folder. Each stage is timed, skipped when its completion
/// marker matches the current settings and inputs, written into a temporary folder that is renamed into place, and
/// then marked complete (the marker is written last, atomically). Killing a run therefore loses at most the stage in
/// progress: the next run discards its partial folder and redoes only that stage and the ones after it.
/// <c>pipeline.json</c> keeps the settings and every stage's timing.
/// </summary>
public sealed class PipelineRunner(IReadOnlyList<PipelineStage> stages)
{
    public const string StateFileName = "pipeline.json";
    public const string MarkerFileName = ".stage-complete.json";
    private const string PartialSuffix = ".partial";

    public IReadOnlyList<PipelineStage> Stages { get; } = stages;

    /// <summary>Parses a comma-separated stage list ("all" or empty = every stage); unknown names are an error
    /// listing the known ones.</summary>
    public IReadOnlyList<PipelineStage> Select(string? list)
    {
        if (string.IsNullOrWhiteSpace(list) || list.Trim() == "all")
            return Stages;
        var names = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var name in names)
            if (Stages.All(s => s.Name != name))
                throw new ArgumentException($"unknown stage '{name}'; the stages are: {string.Join(", ", Stages.Select(s => s.Name))}");
        return Stages.Where(s => names.Contains(s.Name)).ToList();
    }

    /// <summary>Reads the settings saved by an earlier run on <paramref name="outputDirectory"/>, or null.</summary>
    public static PipelineSettings? LoadSettings(string outputDirectory)
    {
        var path = Path.Combine(outputDirectory, StateFileName);
        if (!File.Exists(path))
            return null;
        try
        {
            var state = JsonNode.Parse(File.ReadAllText(path));
            return state?["settings"]?.Deserialize<PipelineSettings>(PipelineSettings.Json)
                   ?? throw new InvalidDataException($"{path}: no 'settings' object");
        }
        catch (JsonException exception)
        {
            throw new InvalidDataException($"{path}: not a valid pipeline state file ({exception.Message})");
        }
    }

    public IReadOnlyList<StageRun> Run(PipelineContext context, IReadOnlyList<PipelineStage> selected)
    {
        var output = Path.GetFullPath(context.OutputDirectory);
        Directory.CreateDirectory(output);
        // One run per folder at a time; the OS releases the lock if the process dies.
        using var lockFile = AcquireLock(output);
        foreach (var partial in Directory.EnumerateDirectories(output, "*" + PartialSuffix))
            Directory.Delete(partial, recursive: true);

        var fingerprints = new Dictionary<string, string>();
        var runContext = new PipelineContext
        {
            Settings = context.Settings,
            OutputDirectory = output,
            Device = context.Device,
            DType = context.DType,
            ReportProgress = context.ReportProgress,
            Log = context.Log,
            Cancellation = context.Cancellation,
            S3Credentials = context.S3Credentials,
            HubToken = context.HubToken,
            HubEndpoint = context.HubEndpoint,
            SkipUpload = context.SkipUpload,
            CompletedFolder = name => fingerprints.ContainsKey(name) ? Path.Combine(output, FolderOf(name)) : null,
        };
        // The stages before and between the selected ones count as inputs only when their output is current.
        foreach (var stage in Stages)
            if (CurrentFingerprint(stage, output, fingerprints, context.Settings) is { } current && ReadMarker(output, stage)?.Fingerprint == current)
                fingerprints[stage.Name] = current;

        var state = LoadState(output);
        state["settings"] = JsonSerializer.SerializeToNode(context.Settings, PipelineSettings.Json);
        var runs = new List<StageRun>();
        foreach (var stage in Stages)
        {
            var isSelected = selected.Contains(stage);
            if (!isSelected)
            {
                // A stage left out keeps its output only while its inputs did not change under it.
                if (fingerprints.ContainsKey(stage.Name) && CurrentFingerprint(stage, output, fingerprints, context.Settings) != fingerprints[stage.Name])
                    fingerprints.Remove(stage.Name);
                continue;
            }
            context.Cancellation.ThrowIfCancellationRequested();
            var fingerprint = CurrentFingerprint(stage, output, fingerprints, context.Settings)
                ?? throw new ArgumentException(
                    $"{output}: stage '{stage.Name}' needs the output of {string.Join(", ", stage.RequiresFor(context.Settings).Where(r => !fingerprints.ContainsKey(r)).Select(r => $"'{r}'"))}, " +
                    $"which is missing or out of date; run those stages first (e.g. --stages {string.Join(",", stage.RequiresFor(context.Settings).Append(stage.Name))})");
            var folder = Path.Combine(output, stage.Folder);
            var marker = ReadMarker(output, stage);
            if (marker?.Fingerprint == fingerprint)
            {
                fingerprints[stage.Name] = fingerprint;
                context.Log($"{stage.Name}: already done ({marker.Seconds:F1} s when it ran), skipped");
                runs.Add(new StageRun(stage.Name, StageOutcome.AlreadyDone, marker.Seconds, folder));
                continue;
            }
            if (marker is not null)
                context.Log($"{stage.Name}: settings or inputs changed since it ran; running it again");
            fingerprints.Remove(stage.Name);
            var work = folder + PartialSuffix;
            Directory.CreateDirectory(work);
            context.Log($"{stage.Name}: running");
            var watch = Stopwatch.StartNew();
            var details = stage.Run(runContext, work);
            var seconds = watch.Elapsed.TotalSeconds;
            if (Directory.Exists(folder))
                Directory.Delete(folder, recursive: true);
            Directory.Move(work, folder);
            var stageMarker = new StageMarker(stage.Name, fingerprint, seconds, DateTimeOffset.UtcNow, details);
            AtomicFile.WriteAllText(Path.Combine(folder, MarkerFileName), JsonSerializer.Serialize(stageMarker, PipelineSettings.Json));
            fingerprints[stage.Name] = fingerprint;
            context.Log($"{stage.Name}: done in {seconds:F1} s");
            runs.Add(new StageRun(stage.Name, StageOutcome.Ran, seconds, folder));
            RecordStage(state, stageMarker);
            AtomicFile.WriteAllText(Path.Combine(output, StateFileName), state.ToJsonString(PipelineSettings.Json));
        }
        foreach (var stage in Stages)
            if (ReadMarker(output, stage) is { } done && fingerprints.ContainsKey(stage.Name))
                RecordStage(state, done);
        AtomicFile.WriteAllText(Path.Combine(output, StateFileName), state.ToJsonString(PipelineSettings.Json));
        return runs;
    }

    /// <summary>The stage's fingerprint given its settings and the fingerprints of its inputs; null when a required
    /// input is not complete.</summary>
    private static string? CurrentFingerprint(PipelineStage stage, string output, Dictionary<string, string> complete, PipelineSettings settings)
    {
        var requires = stage.RequiresFor(settings);
        if (requires.Any(r => !complete.ContainsKey(r)))
            return null;
        var inputs = requires.Concat(stage.Uses).Where(complete.ContainsKey).Select(r => $"{r}={complete[r]}").ToArray();
        return PipelineSettings.Fingerprint(stage.Name, stage.SettingsFingerprint(settings), inputs);
    }

    private string FolderOf(string stage) => Stages.First(s => s.Name == stage).Folder;

    private static StageMarker? ReadMarker(string output, PipelineStage stage)
    {
        var path = Path.Combine(output, stage.Folder, MarkerFileName);
        if (!File.Exists(path))
            return null;
        try
        {
            return JsonSerializer.Deserialize<StageMarker>(File.ReadAllText(path), PipelineSettings.Json);
        }
        catch (JsonException)
        {
            return null; // An unreadable marker means the stage is not known to be complete: it runs again.
        }
    }

    private static JsonObject LoadState(string output)
    {
        var path = Path.Combine(output, StateFileName);
        return File.Exists(path) && JsonNode.Parse(File.ReadAllText(path)) is JsonObject state ? state : new JsonObject();
    }

    private static void RecordStage(JsonObject state, StageMarker marker)
    {
        if (state["stages"] is not JsonObject stagesNode)
            state["stages"] = stagesNode = new JsonObject();
        stagesNode[marker.Stage] = JsonSerializer.SerializeToNode(marker, PipelineSettings.Json);
    }

    private static FileStream AcquireLock(string output)
    {
        var path = Path.Combine(output, ".pipeline.lock");
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (IOException)
        {
            throw new InvalidOperationException($"{output}: another pipeline run is using this output folder");
        }
    }
}

/// <summary>The completion marker of a stage, also recorded under <c>stages</c> in <c>pipeline.json</c>.</summary>
public sealed record StageMarker(string Stage, string Fingerprint, double Seconds, DateTimeOffset CompletedAt, IReadOnlyDictionary<string, object?>? Details);
