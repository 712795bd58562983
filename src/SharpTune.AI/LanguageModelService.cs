using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Peft;
using static TorchSharp.torch;

namespace SharpTune.AI;

/// <summary>How to load and serve a causal LM.</summary>
public sealed record LanguageModelOptions
{
    /// <summary>LoRA adapter directory applied on top of the model.</summary>
    public string? AdapterDirectory { get; init; }
    public Device? Device { get; init; }
    public ScalarType? DType { get; init; }
    /// <summary>The name clients use for the model; defaults to the model folder's name.</summary>
    public string? ModelId { get; init; }
    public BatchingOptions Batching { get; init; } = new();
    /// <summary>The conversation format; defaults to the model's chat template when it has one, else <see cref="PlainChatFormat"/>.</summary>
    public IChatFormat? ChatFormat { get; init; }
}

/// <summary>Sampling settings of one request, in OpenAI's and Microsoft.Extensions.AI's terms; null keeps the model's
/// generation_config.json value.</summary>
public sealed record SamplingSettings
{
    public required int MaxTokens { get; init; }
    /// <summary>0 means greedy decoding.</summary>
    public double? Temperature { get; init; }
    public double? TopP { get; init; }
    public int? TopK { get; init; }
    public long? Seed { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
}

/// <summary>
/// A loaded causal LM (optionally with a LoRA adapter) with its tokenizer, generation defaults, chat format and a
/// <see cref="BatchedTextGenerator"/>: what <see cref="SharpTuneChatClient"/> and the OpenAI-compatible server share.
/// Thread-safe.
/// </summary>
public sealed class LanguageModelService : IDisposable
{
    private readonly PreTrainedModel _model;

    private LanguageModelService(PreTrainedModel model, ICausalLM causal, PromptTokenizer tokenizer, GenerationConfig defaults, string modelId,
        IChatFormat chatFormat, BatchingOptions batching, ILogger? logger)
    {
        _model = model;
        Tokenizer = tokenizer;
        Defaults = defaults;
        ModelId = modelId;
        ChatFormat = chatFormat;
        Generator = new BatchedTextGenerator(causal, tokenizer.Decode, batching, logger);
    }

    public string ModelId { get; }
    public PromptTokenizer Tokenizer { get; }
    /// <summary>generation_config.json's values (or config.json's special tokens).</summary>
    public GenerationConfig Defaults { get; }
    public IChatFormat ChatFormat { get; }
    public BatchedTextGenerator Generator { get; }
    /// <summary>Context length: prompt + completion tokens.</summary>
    public int MaxPositions => Generator.MaxPositions;

    public static LanguageModelService FromPretrained(string directory, LanguageModelOptions? options = null, ILogger? logger = null)
    {
        options ??= new LanguageModelOptions();
        options.Batching.Validate();
        // A Hub id is served under that id, not its snapshot folder's commit-hash name.
        var hubId = Hub.PretrainedPath.IsHubId(directory) ? directory : null;
        directory = Hub.PretrainedPath.Resolve(directory);
        var tokenizer = PromptTokenizer.FromPretrained(directory);
        var defaults = GenerationConfig.FromPretrained(directory);
        var model = AutoModel.FromPretrained(directory, ModelTask.CausalLM, options.Device, options.DType);
        try
        {
            if (options.AdapterDirectory is { } adapter)
                PeftModel.FromPretrained(model, adapter);
            model.eval();
            var causal = model as ICausalLM ?? throw new ArgumentException($"{directory}: {model.GetType().Name} is not a causal language model");
            var modelId = options.ModelId ?? hubId ?? new DirectoryInfo(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory))).Name;
            return new LanguageModelService(model, causal, tokenizer, defaults, modelId, options.ChatFormat ?? ChatFormats.For(directory), options.Batching, logger);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public IReadOnlyList<long> EncodePrompt(string text) => Tokenizer.Encode(text);

    public IReadOnlyList<long> EncodeChat(IReadOnlyList<ChatMessage> messages) => ChatFormat.EncodeChat(messages, Tokenizer);

    /// <summary>The generation config of a request: the model's defaults overridden by <paramref name="settings"/>
    /// (temperature 0 is greedy; any other temperature samples).</summary>
    public GenerationConfig ConfigFor(SamplingSettings settings)
    {
        var sample = settings.Temperature is { } t ? t > 0 : Defaults.DoSample || settings.TopP is not null;
        return Defaults with
        {
            MaxNewTokens = settings.MaxTokens,
            MaxLength = null,
            DoSample = sample,
            Temperature = settings.Temperature is { } temperature && temperature > 0 ? temperature : Defaults.Temperature,
            TopP = settings.TopP ?? Defaults.TopP,
            TopK = settings.TopK ?? Defaults.TopK,
            Seed = settings.Seed ?? Defaults.Seed,
            StopStrings = settings.Stop.Count > 0 ? settings.Stop : Defaults.StopStrings,
        };
    }

    /// <summary>Queues a completion of <paramref name="prompt"/> (see <see cref="BatchedTextGenerator.Submit"/>).</summary>
    public GenerationStream Submit(IReadOnlyList<long> prompt, SamplingSettings settings, CancellationToken cancellationToken = default) =>
        Generator.Submit(prompt, ConfigFor(settings), cancellationToken);

    public void Dispose()
    {
        Generator.Dispose();
        _model.Dispose();
    }
}
