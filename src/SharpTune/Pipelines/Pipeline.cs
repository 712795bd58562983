using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Tokenizers;
using SharpTune.Training.Data;
using static TorchSharp.torch;

namespace SharpTune.Pipelines;

/// <summary>Where and how a pipeline runs; every task accepts these (Hugging Face's pipeline arguments).</summary>
public sealed record PipelineOptions
{
    /// <summary>Device to run on; CPU when null.</summary>
    public Device? Device { get; init; }
    /// <summary>Compute dtype of the weights (e.g. bfloat16); the checkpoint's own when null.</summary>
    public ScalarType? DType { get; init; }
    /// <summary>Inputs per forward pass (inputs are sorted by length first, so batches carry little padding).</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary>Longest input in tokens (special tokens included) for the encoder tasks; longer inputs are truncated.
    /// Capped by the model's position embeddings, which is also the default. Generation prompts are not truncated.</summary>
    public int? MaxLength { get; init; }
    /// <summary>A PEFT LoRA adapter folder to apply to the model.</summary>
    public string? AdapterDirectory { get; init; }
    /// <summary>Tokenizer file or folder; the model folder when null.</summary>
    public string? TokenizerPath { get; init; }
}

/// <summary>
/// Inference on raw text, as transformers' <c>pipeline()</c>: a model folder's tokenizer and model for one task,
/// inputs tokenized, batched by length with dynamic padding, run without gradients, and post-processed into
/// readable results. <see cref="Create"/> picks the task by name; each task's class has typed methods.
/// </summary>
public abstract class Pipeline : IDisposable
{
    public const string TextClassification = "text-classification";
    public const string FeatureExtraction = "feature-extraction";
    public const string FillMask = "fill-mask";
    public const string TextGeneration = "text-generation";

    public static IReadOnlyList<string> Tasks { get; } = [TextClassification, FeatureExtraction, FillMask, TextGeneration];

    private protected Pipeline(string task, string modelDirectory, PreTrainedModel model, Tokenizer tokenizer, PipelineOptions options)
    {
        Task = task;
        ModelDirectory = modelDirectory;
        Model = model;
        Tokenizer = tokenizer;
        Options = options;
        Device = options.Device ?? CPU;
        var maxPositions = model.Config.Get("max_position_embeddings", int.MaxValue, "n_positions");
        MaxLength = Math.Min(options.MaxLength ?? maxPositions, maxPositions);
        PadTokenId = tokenizer.PadTokenId ?? model.Config.Get<long?>("pad_token_id", null) ?? 0;
    }

    /// <summary>The task name (e.g. "fill-mask").</summary>
    public string Task { get; }
    public string ModelDirectory { get; }
    public PreTrainedModel Model { get; }
    public Tokenizer Tokenizer { get; }
    public PipelineOptions Options { get; }
    public Device Device { get; }
    /// <summary>Token budget of one encoder input (see <see cref="PipelineOptions.MaxLength"/>).</summary>
    public int MaxLength { get; }
    protected long PadTokenId { get; }

    /// <summary>Builds the pipeline of <paramref name="task"/> on a Hugging Face model folder (config.json, weights, tokenizer)
    /// or Hub id; the options' tokenizer and adapter may be Hub ids too.</summary>
    public static Pipeline Create(string task, string modelDirectory, PipelineOptions? options = null) => task switch
    {
        TextClassification => TextClassificationPipeline.FromPretrained(modelDirectory, options),
        FeatureExtraction => FeatureExtractionPipeline.FromPretrained(modelDirectory, options),
        FillMask => FillMaskPipeline.FromPretrained(modelDirectory, options),
        TextGeneration => TextGenerationPipeline.FromPretrained(modelDirectory, options),
        _ => throw new ArgumentException($"unknown pipeline task '{task}': expected {string.Join(", ", Tasks)}"),
    };

    /// <summary>The model folder, tokenizer and adapter of a pipeline as local paths: Hub ids are found in the Hugging Face
    /// cache or downloaded (<see cref="Hub.PretrainedPath"/>).</summary>
    private protected static (string ModelDirectory, PipelineOptions Options) ResolvePaths(string modelDirectory, PipelineOptions? options)
    {
        options ??= new PipelineOptions();
        return (Hub.PretrainedPath.Resolve(modelDirectory), options with
        {
            TokenizerPath = options.TokenizerPath is { } tokenizer ? Hub.PretrainedPath.Resolve(tokenizer, Hub.HubFileSelection.Tokenizer) : null,
            AdapterDirectory = options.AdapterDirectory is { } adapter ? Hub.PretrainedPath.Resolve(adapter) : null,
        });
    }

    /// <summary>Loads the model for <paramref name="modelTask"/> (on the options' device and dtype) and applies the
    /// adapter. With <paramref name="requireTrainedHead"/>, a checkpoint without the task's head (which would be
    /// initialised randomly) is refused: its predictions would be noise.</summary>
    private protected static PreTrainedModel LoadModel(string task, string modelDirectory, ModelTask modelTask, PipelineOptions options, bool requireTrainedHead)
    {
        if (options.BatchSize < 1)
            throw new ArgumentException($"batch size must be at least 1 (got {options.BatchSize})");
        if (options.MaxLength is < 2)
            throw new ArgumentException($"max length must be at least 2 tokens (got {options.MaxLength})");
        var model = AutoModel.FromPretrained(modelDirectory, out var report, modelTask, options.Device, options.DType);
        try
        {
            if (options.AdapterDirectory is { } adapter)
                PeftModel.FromPretrained(model, adapter);
            if (requireTrainedHead)
            {
                // An adapter's modules_to_save (e.g. "classifier") supplies weights the base checkpoint lacks.
                var saved = options.AdapterDirectory is { } dir ? LoraConfig.FromDirectory(dir).ModulesToSave ?? [] : [];
                var untrained = report.Initialized.Where(name => !saved.Any(m => name.StartsWith(m + ".", StringComparison.Ordinal) || name.Contains("." + m + ".", StringComparison.Ordinal))).ToList();
                if (untrained.Count > 0)
                    throw new InvalidDataException(
                        $"{modelDirectory}: the checkpoint has no trained {task} head ({string.Join(", ", untrained.Take(4))}{(untrained.Count > 4 ? ", ..." : "")} would be random); " +
                        $"fine-tune the model for this task first (e.g. sharptune classify --approach finetune)");
            }
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Tokenizes each text (with its second segment, when <paramref name="textPairs"/> has one) with the
    /// pipeline's truncation (special tokens added).</summary>
    protected IReadOnlyList<TokenEncoding> Encode(IReadOnlyList<string> texts, IReadOnlyList<string?>? textPairs = null)
    {
        if (textPairs is not null && textPairs.Count != texts.Count)
            throw new ArgumentException($"{textPairs.Count} text pairs for {texts.Count} texts");
        var options = EncodeOptions.Truncated(MaxLength);
        return texts.Select((t, i) => Tokenizer.Encode(t, textPairs?[i], options)).ToList();
    }

    /// <summary>Runs the model over <paramref name="encodings"/> in batches of similar lengths, right-padded per batch,
    /// without gradients. <paramref name="consume"/> gets each batch's input rows (indices into
    /// <paramref name="encodings"/>), its inputs and the model's output; tensors are freed after it returns.
    /// <paramref name="progress"/> gets the number of inputs done after each batch.</summary>
    protected void RunBatches(IReadOnlyList<TokenEncoding> encodings, Action<int[], ModelInputs, ModelOutput> consume, CancellationToken cancellation,
        Action<int>? progress = null)
    {
        var examples = encodings.Select(e => new TrainingExample(e.Ids.Select(id => (long)id).ToArray())
        {
            TokenTypeIds = e.TypeIds.Select(t => (long)t).ToArray(),
        }).ToArray();
        var order = Enumerable.Range(0, examples.Length).OrderBy(i => examples[i].Length).ToArray();
        var collator = new DataCollatorWithPadding(PadTokenId);
        using var noGrad = no_grad();
        foreach (var rows in order.Chunk(Options.BatchSize))
        {
            cancellation.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            using var batch = collator.Collate(rows.Select(i => examples[i]).ToList(), Device);
            using var output = Model.Forward(batch.Inputs);
            consume(rows, batch.Inputs, output);
            progress?.Invoke(rows.Length);
        }
    }

    /// <summary>Names one input in error messages: its position and (shortened) text.</summary>
    protected static string Describe(int index, string text) =>
        $"input {index + 1} (\"{(text.Length > 60 ? text[..57] + "..." : text)}\")";

    public void Dispose()
    {
        Model.Dispose();
        GC.SuppressFinalize(this);
    }
}
