using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SharpTune.AI;
using SharpTune.Generation;

namespace SharpTune.Serving;

/// <summary>Where and how the server listens, and its request limits.</summary>
public sealed record ServerOptions
{
    /// <summary>Address to bind: loopback by default; "0.0.0.0" or "::" listens on every interface.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>TCP port; 0 picks a free one (see <see cref="SharpTuneServer.Address"/>).</summary>
    public int Port { get; init; } = 8000;
    /// <summary>When set, every /v1 request needs <c>Authorization: Bearer KEY</c> (401 otherwise).</summary>
    public string? ApiKey { get; init; }
    /// <summary>Largest request body accepted (413 beyond).</summary>
    public long MaxRequestBodyBytes { get; init; } = 1 << 20;
    /// <summary>Largest max_tokens a request may ask for; also the chat default when max_tokens is absent.</summary>
    public int MaxTokensLimit { get; init; } = 2048;
    /// <summary>Most texts in one embeddings request.</summary>
    public int MaxEmbeddingInputs { get; init; } = 256;

    public void Validate()
    {
        if (Port is < 0 or > 65535)
            throw new ArgumentException($"port must be in 0..65535 (got {Port})");
        if (MaxRequestBodyBytes < 1024)
            throw new ArgumentException($"the request body limit must be at least 1024 bytes (got {MaxRequestBodyBytes})");
        if (MaxTokensLimit < 1)
            throw new ArgumentException($"the max_tokens limit must be at least 1 (got {MaxTokensLimit})");
        if (ApiKey is { Length: 0 })
            throw new ArgumentException("the API key is empty");
        _ = ParseHost(Host);
    }

    internal static IPAddress? ParseHost(string host) => host switch
    {
        "localhost" => null,
        _ when IPAddress.TryParse(host, out var address) => address,
        _ => throw new ArgumentException($"host '{host}' is not an IP address (use 127.0.0.1, ::1, localhost, 0.0.0.0 or ::)"),
    };
}

/// <summary>
/// An OpenAI-compatible HTTP server (ASP.NET Core Kestrel) for a causal LM and/or an embedding model:
/// <c>GET /v1/models</c>, <c>POST /v1/chat/completions</c> and <c>/v1/completions</c> (whole, or streamed as server-sent
/// events ending with <c>data: [DONE]</c>), <c>POST /v1/embeddings</c>, <c>GET /health</c>. Errors use OpenAI's JSON shape;
/// generation requests go through the model's <see cref="BatchedTextGenerator"/> (429 when its queue is full) and a
/// client disconnecting cancels its sequence. The server does not own the models.
/// </summary>
public sealed class SharpTuneServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ServerOptions _options;
    private readonly LanguageModelService? _language;
    private readonly SharpTuneEmbeddingGenerator? _embeddings;
    private readonly ILogger _logger;
    private readonly byte[]? _apiKey;
    private readonly long _created = OpenAIProtocol.Now();
    private bool _started;

    private SharpTuneServer(WebApplication app, ServerOptions options, LanguageModelService? language, SharpTuneEmbeddingGenerator? embeddings)
    {
        _app = app;
        _options = options;
        _language = language;
        _embeddings = embeddings;
        _logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("SharpTune.Serving");
        _apiKey = options.ApiKey is { } key ? Encoding.UTF8.GetBytes(key) : null;
        Map(app);
    }

    /// <summary>The address the server listens on once started (e.g. http://127.0.0.1:8000).</summary>
    public string Address => _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    /// <param name="logging">Configures logging (console by default, warnings and errors only).</param>
    public static SharpTuneServer Create(ServerOptions options, LanguageModelService? language, SharpTuneEmbeddingGenerator? embeddings = null,
        Action<ILoggingBuilder>? logging = null)
    {
        options.Validate();
        if (language is null && embeddings is null)
            throw new ArgumentException("nothing to serve: give a causal language model and/or an embedding model");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (logging is not null)
            logging(builder.Logging);
        else
            builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            if (ServerOptions.ParseHost(options.Host) is { } address)
                kestrel.Listen(address, options.Port);
            else
                kestrel.ListenLocalhost(options.Port);
        });
        return new SharpTuneServer(builder.Build(), options, language, embeddings);
    }

    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await _app.StartAsync(cancellationToken);
        _started = true;
    }

    /// <summary>Serves (starting first if needed) until <paramref name="cancellationToken"/> is cancelled or the process is asked to stop.</summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        if (!_started)
            await StartAsync(cancellationToken);
        try
        {
            await _app.WaitForShutdownAsync(cancellationToken);
        }
        finally
        {
            await _app.StopAsync(CancellationToken.None);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private void Map(WebApplication app)
    {
        app.Use(async (context, next) =>
        {
            try
            {
                if (_apiKey is not null && context.Request.Path.StartsWithSegments("/v1") && !Authorized(context.Request))
                    throw new OpenAIException(401, "invalid or missing API key: send 'Authorization: Bearer <key>'", code: "invalid_api_key");
                await next(context);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                // The client went away; its sequence was cancelled with the request.
            }
            catch (Exception error) when (!context.Response.HasStarted)
            {
                var answer = error switch
                {
                    OpenAIException openAI => openAI,
                    BadHttpRequestException { StatusCode: 413 } => new OpenAIException(413, $"the request body exceeds {_options.MaxRequestBodyBytes} bytes", code: "request_too_large"),
                    BadHttpRequestException bad => new OpenAIException(bad.StatusCode, bad.Message),
                    QueueFullException busy => new OpenAIException(429, busy.Message, "rate_limit_exceeded", code: "rate_limit_exceeded"),
                    ArgumentException invalid => OpenAIException.BadRequest(invalid.Message),
                    _ => null,
                };
                if (answer is null)
                {
                    _logger.LogError(error, "{Method} {Path} failed", context.Request.Method, context.Request.Path);
                    answer = new OpenAIException(500, $"the server failed to process the request ({error.GetType().Name}: {error.Message})", "server_error");
                }
                await OpenAIProtocol.WriteErrorAsync(context.Response, answer);
            }
            catch (Exception error)
            {
                // Mid-stream: the status is sent; end the stream with an error event.
                _logger.LogError(error, "{Method} {Path} failed while streaming", context.Request.Method, context.Request.Path);
                var message = new JsonObject { ["error"] = new JsonObject { ["message"] = error.Message, ["type"] = "server_error" } };
                try
                {
                    await OpenAIProtocol.WriteEventAsync(context.Response, message.ToJsonString(OpenAIProtocol.Json), context.RequestAborted);
                }
                catch (Exception)
                {
                    // The connection is gone as well.
                }
            }
        });

        app.MapGet("/health", () => Results.Json(new
        {
            status = "ok",
            models = ModelIds(),
            active_sequences = _language?.Generator.ActiveSequences ?? 0,
            queued_requests = _language?.Generator.QueuedRequests ?? 0,
            generated_tokens = _language?.Generator.GeneratedTokens ?? 0,
            cancelled_sequences = _language?.Generator.CancelledSequences ?? 0,
        }));
        app.MapGet("/v1/models", () => Results.Json(new { @object = "list", data = ModelIds().Select(ModelObject).ToList() }));
        app.MapGet("/v1/models/{id}", (string id) => ModelIds().Contains(id)
            ? Results.Json(ModelObject(id))
            : throw new OpenAIException(404, $"the model '{id}' does not exist", param: "model", code: "model_not_found"));
        app.MapPost("/v1/completions", Completions);
        app.MapPost("/v1/chat/completions", ChatCompletions);
        app.MapPost("/v1/embeddings", Embeddings);
        app.MapFallback((HttpContext context) =>
            throw new OpenAIException(404, $"no endpoint {context.Request.Method} {context.Request.Path}", code: "not_found"));
    }

    private bool Authorized(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
            return false;
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[scheme.Length..].Trim()), _apiKey);
    }

    private List<string> ModelIds() => new[] { _language?.ModelId, _embeddings?.ModelId }.OfType<string>().Distinct().ToList();

    private object ModelObject(string id) => new { id, @object = "model", created = _created, owned_by = "sharptune" };

    private LanguageModelService LanguageModel(JsonObject body)
    {
        var language = _language ?? throw new OpenAIException(404, "this server has no text generation model (it serves embeddings)", param: "model", code: "model_not_found");
        CheckModel(body, language.ModelId);
        return language;
    }

    private static void CheckModel(JsonObject body, string served)
    {
        if (OpenAIProtocol.OptionalString(body, "model") is { } model && model != served)
            throw new OpenAIException(404, $"the model '{model}' does not exist: this endpoint serves '{served}'", param: "model", code: "model_not_found");
    }

    /// <summary>Sampling settings of a request, with max_tokens checked against the context left after the prompt.</summary>
    private SamplingSettings Settings(JsonObject body, LanguageModelService language, int promptTokens, int? defaultMaxTokens, string promptParam)
    {
        OpenAIProtocol.RequireSingleChoice(body);
        var room = language.MaxPositions - promptTokens;
        if (room < 1)
            throw OpenAIException.BadRequest(
                $"the prompt has {promptTokens} tokens; the model's context is {language.MaxPositions} tokens, leaving no room for a completion",
                promptParam, "context_length_exceeded");
        var requested = OpenAIProtocol.OptionalInteger(body, "max_completion_tokens", 1, int.MaxValue)
                        ?? OpenAIProtocol.OptionalInteger(body, "max_tokens", 1, int.MaxValue);
        if (requested > _options.MaxTokensLimit)
            throw OpenAIException.BadRequest($"max_tokens is {requested}; this server allows at most {_options.MaxTokensLimit}", "max_tokens");
        if (requested > room)
            throw OpenAIException.BadRequest(
                $"the prompt ({promptTokens} tokens) + max_tokens ({requested}) exceed the model's context of {language.MaxPositions} tokens",
                "max_tokens", "context_length_exceeded");
        return new SamplingSettings
        {
            MaxTokens = (int)(requested ?? Math.Min(defaultMaxTokens ?? _options.MaxTokensLimit, room)),
            Temperature = OpenAIProtocol.OptionalNumber(body, "temperature", 0, 2),
            TopP = OpenAIProtocol.OptionalNumber(body, "top_p", 0, 1) is { } topP ? Math.Max(topP, 1e-6) : null,
            Seed = OpenAIProtocol.OptionalInteger(body, "seed", long.MinValue, long.MaxValue),
            Stop = OpenAIProtocol.StopSequences(body),
        };
    }

    private async Task Completions(HttpContext context)
    {
        var aborted = context.RequestAborted;
        var body = await OpenAIProtocol.ReadBodyAsync(context.Request, aborted);
        var language = LanguageModel(body);
        var prompt = CompletionPrompt(body, language);
        // OpenAI's default for /v1/completions is 16 tokens.
        var settings = Settings(body, language, prompt.Count, 16, "prompt");
        await GenerateAsync(context, body, language, prompt, settings, WriteCompletionAsync);
    }

    /// <summary>Submits the prompt and writes the response. The sequence ends with the request: on a disconnect, and
    /// whenever the writer stops early (a failed write).</summary>
    private static async Task GenerateAsync(HttpContext context, JsonObject body, LanguageModelService language, IReadOnlyList<long> prompt,
        SamplingSettings settings, Func<HttpContext, LanguageModelService, GenerationStream, bool, bool, Task> writeAsync)
    {
        var stream = OpenAIProtocol.OptionalBool(body, "stream");
        var includeUsage = OpenAIProtocol.IncludeUsage(body);
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var generation = language.Submit(prompt, settings, lifetime.Token);
        try
        {
            await writeAsync(context, language, generation, stream, includeUsage);
        }
        finally
        {
            if (!generation.Completion.IsCompleted)
                await lifetime.CancelAsync();
        }
    }

    private static async Task WriteCompletionAsync(HttpContext context, LanguageModelService language, GenerationStream generation, bool stream, bool includeUsage)
    {
        var aborted = context.RequestAborted;
        var id = "cmpl-" + Guid.NewGuid().ToString("N");
        var created = OpenAIProtocol.Now();

        JsonObject Chunk(string text, string? finish) => new()
        {
            ["id"] = id,
            ["object"] = "text_completion",
            ["created"] = created,
            ["model"] = language.ModelId,
            ["choices"] = new JsonArray(new JsonObject { ["text"] = text, ["index"] = 0, ["logprobs"] = null, ["finish_reason"] = finish }),
        };

        if (!stream)
        {
            var outcome = await generation.Completion.WaitAsync(aborted);
            var whole = Chunk(outcome.Text, FinishReasonName(outcome.FinishReason));
            whole["usage"] = OpenAIProtocol.Usage(outcome.PromptTokens, outcome.CompletionTokens);
            await OpenAIProtocol.WriteJsonAsync(context.Response, 200, whole);
            return;
        }
        await OpenAIProtocol.StartEventStreamAsync(context.Response, aborted);
        await foreach (var text in generation.ReadTextAsync(aborted))
            await OpenAIProtocol.WriteEventAsync(context.Response, Chunk(text, null).ToJsonString(OpenAIProtocol.Json), aborted);
        var final = await generation.Completion.WaitAsync(aborted);
        await OpenAIProtocol.WriteEventAsync(context.Response, Chunk("", FinishReasonName(final.FinishReason)).ToJsonString(OpenAIProtocol.Json), aborted);
        if (includeUsage)
        {
            var usage = Chunk("", null);
            usage["choices"] = new JsonArray();
            usage["usage"] = OpenAIProtocol.Usage(final.PromptTokens, final.CompletionTokens);
            await OpenAIProtocol.WriteEventAsync(context.Response, usage.ToJsonString(OpenAIProtocol.Json), aborted);
        }
        await OpenAIProtocol.WriteEventAsync(context.Response, "[DONE]", aborted);
    }

    /// <summary>'prompt': a string, an array holding one string, or an array of token ids.</summary>
    private static IReadOnlyList<long> CompletionPrompt(JsonObject body, LanguageModelService language)
    {
        if (!body.TryGetPropertyValue("prompt", out var node) || node is null)
            throw OpenAIException.BadRequest("'prompt' is required", "prompt", "missing_required_parameter");
        if (node is JsonValue value && value.TryGetValue<string>(out var text))
            return language.EncodePrompt(text);
        if (node is JsonArray { Count: 1 } one && one[0] is JsonValue first && first.TryGetValue<string>(out var single))
            return language.EncodePrompt(single);
        if (node is JsonArray { Count: > 0 } ids && ids.All(i => i is JsonValue v && v.TryGetValue<long>(out _)))
        {
            var tokens = ids.Select(i => i!.GetValue<long>()).ToList();
            var vocabulary = language.Generator.VocabSize;
            return tokens.All(t => t >= 0 && t < vocabulary)
                ? tokens
                : throw OpenAIException.BadRequest($"'prompt' holds a token id outside the vocabulary (0..{vocabulary - 1})", "prompt");
        }
        throw OpenAIException.BadRequest("'prompt' must be a string, an array of one string, or an array of token ids (one prompt per request)", "prompt", "invalid_type");
    }

    private async Task ChatCompletions(HttpContext context)
    {
        var aborted = context.RequestAborted;
        var body = await OpenAIProtocol.ReadBodyAsync(context.Request, aborted);
        var language = LanguageModel(body);
        var messages = ChatMessages(body);
        var prompt = language.EncodeChat(messages);
        var settings = Settings(body, language, prompt.Count, null, "messages");
        await GenerateAsync(context, body, language, prompt, settings, WriteChatCompletionAsync);
    }

    private static async Task WriteChatCompletionAsync(HttpContext context, LanguageModelService language, GenerationStream generation, bool stream, bool includeUsage)
    {
        var aborted = context.RequestAborted;
        var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var created = OpenAIProtocol.Now();

        JsonObject Response(string type, JsonArray choices) => new()
        {
            ["id"] = id,
            ["object"] = type,
            ["created"] = created,
            ["model"] = language.ModelId,
            ["system_fingerprint"] = null,
            ["choices"] = choices,
        };

        if (!stream)
        {
            var outcome = await generation.Completion.WaitAsync(aborted);
            var whole = Response("chat.completion", new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = outcome.Text },
                ["logprobs"] = null,
                ["finish_reason"] = FinishReasonName(outcome.FinishReason),
            }));
            whole["usage"] = OpenAIProtocol.Usage(outcome.PromptTokens, outcome.CompletionTokens);
            await OpenAIProtocol.WriteJsonAsync(context.Response, 200, whole);
            return;
        }

        JsonObject Chunk(JsonObject delta, string? finish) => Response("chat.completion.chunk",
            new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = null, ["finish_reason"] = finish }));

        await OpenAIProtocol.StartEventStreamAsync(context.Response, aborted);
        await OpenAIProtocol.WriteEventAsync(context.Response, Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null).ToJsonString(OpenAIProtocol.Json), aborted);
        await foreach (var text in generation.ReadTextAsync(aborted))
            await OpenAIProtocol.WriteEventAsync(context.Response, Chunk(new JsonObject { ["content"] = text }, null).ToJsonString(OpenAIProtocol.Json), aborted);
        var final = await generation.Completion.WaitAsync(aborted);
        await OpenAIProtocol.WriteEventAsync(context.Response, Chunk(new JsonObject(), FinishReasonName(final.FinishReason)).ToJsonString(OpenAIProtocol.Json), aborted);
        if (includeUsage)
        {
            var usage = Response("chat.completion.chunk", new JsonArray());
            usage["usage"] = OpenAIProtocol.Usage(final.PromptTokens, final.CompletionTokens);
            await OpenAIProtocol.WriteEventAsync(context.Response, usage.ToJsonString(OpenAIProtocol.Json), aborted);
        }
        await OpenAIProtocol.WriteEventAsync(context.Response, "[DONE]", aborted);
    }

    /// <summary>'messages': objects with a role and content (a string, or an array of text parts).</summary>
    private static List<ChatMessage> ChatMessages(JsonObject body)
    {
        if (!body.TryGetPropertyValue("messages", out var node) || node is null)
            throw OpenAIException.BadRequest("'messages' is required", "messages", "missing_required_parameter");
        if (node is not JsonArray { Count: > 0 } list)
            throw OpenAIException.BadRequest("'messages' must be a non-empty array of messages", "messages", "invalid_type");
        var messages = new List<ChatMessage>();
        for (var i = 0; i < list.Count; i++)
        {
            var param = $"messages[{i}]";
            if (list[i] is not JsonObject message)
                throw OpenAIProtocol.WrongType(param, "an object with 'role' and 'content'");
            var role = OpenAIProtocol.OptionalString(message, "role") ?? throw OpenAIException.BadRequest($"'{param}.role' is required", param + ".role");
            if (role is not ("system" or "developer" or "user" or "assistant" or "tool"))
                throw OpenAIException.BadRequest($"'{param}.role' must be system, developer, user, assistant or tool (got '{role}')", param + ".role");
            var content = message["content"] switch
            {
                null => "",
                JsonValue value when value.TryGetValue<string>(out var text) => text,
                JsonArray parts when parts.All(p => p is JsonObject part && part["type"]?.GetValueKind() == System.Text.Json.JsonValueKind.String) =>
                    string.Concat(parts.Select(p => (JsonObject)p!).Select(part => (string)part["type"]! == "text"
                        ? OpenAIProtocol.OptionalString(part, "text") ?? ""
                        : throw OpenAIException.BadRequest($"'{param}.content' has a '{(string)part["type"]!}' part: only text is supported", param + ".content"))),
                _ => throw OpenAIProtocol.WrongType(param + ".content", "a string or an array of text parts"),
            };
            messages.Add(new ChatMessage(role == "developer" ? ChatRole.System : new ChatRole(role), content));
        }
        return messages;
    }

    private async Task Embeddings(HttpContext context)
    {
        var aborted = context.RequestAborted;
        var body = await OpenAIProtocol.ReadBodyAsync(context.Request, aborted);
        var embeddings = _embeddings ?? throw new OpenAIException(404, "this server has no embedding model: start it with an encoder (e.g. --embedding-model DIR)", param: "model", code: "model_not_found");
        CheckModel(body, embeddings.ModelId);
        var inputs = body["input"] switch
        {
            JsonValue value when value.TryGetValue<string>(out var text) => [text],
            JsonArray { Count: > 0 } list when list.All(i => i is JsonValue v && v.TryGetValue<string>(out _)) => list.Select(i => i!.GetValue<string>()).ToList(),
            null => throw OpenAIException.BadRequest("'input' is required", "input", "missing_required_parameter"),
            _ => throw OpenAIProtocol.WrongType("input", "a string or a non-empty array of strings"),
        };
        if (inputs.Count > _options.MaxEmbeddingInputs)
            throw OpenAIException.BadRequest($"'input' has {inputs.Count} texts; at most {_options.MaxEmbeddingInputs} per request", "input");
        var format = OpenAIProtocol.OptionalString(body, "encoding_format") ?? "float";
        if (format is not ("float" or "base64"))
            throw OpenAIException.BadRequest($"'encoding_format' must be float or base64 (got '{format}')", "encoding_format");
        var dimensions = OpenAIProtocol.OptionalInteger(body, "dimensions", 1, int.MaxValue);
        GeneratedEmbeddings<Embedding<float>> result;
        try
        {
            result = await embeddings.GenerateAsync(inputs, new EmbeddingGenerationOptions { Dimensions = (int?)dimensions }, aborted);
        }
        catch (ArgumentException e)
        {
            throw OpenAIException.BadRequest(e.Message, "input");
        }
        var data = new JsonArray();
        for (var i = 0; i < result.Count; i++)
        {
            var vector = result[i].Vector;
            JsonNode encoded = format == "base64"
                ? Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(vector.Span))
                : new JsonArray(vector.ToArray().Select(v => (JsonNode)v).ToArray());
            data.Add(new JsonObject { ["object"] = "embedding", ["index"] = i, ["embedding"] = encoded });
        }
        var tokens = (int)(result.Usage?.InputTokenCount ?? 0);
        await OpenAIProtocol.WriteJsonAsync(context.Response, 200, new JsonObject
        {
            ["object"] = "list",
            ["data"] = data,
            ["model"] = embeddings.ModelId,
            ["usage"] = new JsonObject { ["prompt_tokens"] = tokens, ["total_tokens"] = tokens },
        });
    }

    private static string FinishReasonName(FinishReason reason) => reason == FinishReason.Length ? "length" : "stop";
}
