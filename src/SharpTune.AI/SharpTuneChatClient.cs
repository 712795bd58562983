using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using SharpTune.Generation;

namespace SharpTune.AI;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IChatClient"/> over a local causal LM (with an optional LoRA adapter):
/// the conversation is formatted with the model's chat format, generated through the shared
/// <see cref="BatchedTextGenerator"/> (concurrent calls are batched), and answered with usage counts and finish
/// reasons. <see cref="ChatOptions"/>: Temperature (0 = greedy), TopP, TopK, MaxOutputTokens, StopSequences, Seed.
/// </summary>
public sealed class SharpTuneChatClient : IChatClient
{
    private readonly bool _ownsService;

    /// <param name="service">The loaded model; the client disposes it only when it created it (<see cref="FromPretrained"/>).</param>
    /// <param name="defaultMaxOutputTokens">Completion tokens when <see cref="ChatOptions.MaxOutputTokens"/> is not set
    /// (always bounded by the context left after the prompt).</param>
    public SharpTuneChatClient(LanguageModelService service, int defaultMaxOutputTokens = 256)
        : this(service, defaultMaxOutputTokens, ownsService: false)
    {
    }

    private SharpTuneChatClient(LanguageModelService service, int defaultMaxOutputTokens, bool ownsService)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(defaultMaxOutputTokens, 1);
        Service = service;
        DefaultMaxOutputTokens = defaultMaxOutputTokens;
        _ownsService = ownsService;
        Metadata = new ChatClientMetadata("sharptune", null, service.ModelId);
    }

    public LanguageModelService Service { get; }
    public int DefaultMaxOutputTokens { get; }
    public ChatClientMetadata Metadata { get; }

    /// <summary>Loads a causal LM folder (config.json, safetensors, tokenizer) and serves it.</summary>
    public static SharpTuneChatClient FromPretrained(string modelDirectory, LanguageModelOptions? options = null, ILogger? logger = null) =>
        new(LanguageModelService.FromPretrained(modelDirectory, options, logger), 256, ownsService: true);

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var stream = Start(messages, options, cancellationToken);
        var outcome = await stream.Completion.ConfigureAwait(false);
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, outcome.Text))
        {
            ResponseId = NewResponseId(),
            ModelId = Service.ModelId,
            CreatedAt = DateTimeOffset.UtcNow,
            FinishReason = ToChatFinishReason(outcome.FinishReason),
            Usage = ToUsage(outcome),
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        // The sequence is cancelled when the caller stops enumerating early, not only through the token.
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var stream = Start(messages, options, abandon.Token);
        var responseId = NewResponseId();
        var messageId = responseId;
        try
        {
            await foreach (var text in stream.ReadTextAsync(cancellationToken).ConfigureAwait(false))
                yield return new ChatResponseUpdate(ChatRole.Assistant, text)
                {
                    ResponseId = responseId,
                    MessageId = messageId,
                    ModelId = Service.ModelId,
                    CreatedAt = DateTimeOffset.UtcNow,
                };
            var outcome = await stream.Completion.ConfigureAwait(false);
            yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(ToUsage(outcome))])
            {
                ResponseId = responseId,
                MessageId = messageId,
                ModelId = Service.ModelId,
                CreatedAt = DateTimeOffset.UtcNow,
                FinishReason = ToChatFinishReason(outcome.FinishReason),
            };
        }
        finally
        {
            if (!stream.Completion.IsCompleted)
                abandon.Cancel();
        }
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null)
            return null;
        if (serviceType == typeof(ChatClientMetadata))
            return Metadata;
        if (serviceType == typeof(LanguageModelService))
            return Service;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    public void Dispose()
    {
        if (_ownsService)
            Service.Dispose();
    }

    /// <summary>The request's generation settings; throws <see cref="ArgumentException"/> when the prompt leaves no room.</summary>
    private GenerationStream Start(IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var prompt = Service.EncodeChat(messages.ToList());
        var room = Service.MaxPositions - prompt.Count;
        if (room < 1)
            throw new ArgumentException($"the conversation ({prompt.Count} tokens) fills the model's context of {Service.MaxPositions} tokens");
        var maxTokens = options?.MaxOutputTokens is { } requested
            ? requested >= 1 ? requested : throw new ArgumentException($"MaxOutputTokens must be at least 1 (got {requested})")
            : Math.Min(DefaultMaxOutputTokens, room);
        var settings = new SamplingSettings
        {
            MaxTokens = maxTokens,
            Temperature = options?.Temperature,
            TopP = options?.TopP,
            TopK = options?.TopK,
            Seed = options?.Seed,
            Stop = options?.StopSequences?.ToList() ?? [],
        };
        return Service.Submit(prompt, settings, cancellationToken);
    }

    private static string NewResponseId() => "chatcmpl-" + Guid.NewGuid().ToString("N");

    private static ChatFinishReason ToChatFinishReason(FinishReason reason) =>
        reason == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop;

    private static UsageDetails ToUsage(GenerationOutcome outcome) => new()
    {
        InputTokenCount = outcome.PromptTokens,
        OutputTokenCount = outcome.CompletionTokens,
        TotalTokenCount = outcome.PromptTokens + outcome.CompletionTokens,
    };
}
