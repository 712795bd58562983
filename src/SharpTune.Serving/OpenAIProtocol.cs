using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace SharpTune.Serving;

/// <summary>An error answered in OpenAI's shape: <c>{"error": {"message", "type", "param", "code"}}</c> with its HTTP status.</summary>
public sealed class OpenAIException(int status, string message, string type = "invalid_request_error", string? param = null, string? code = null)
    : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    public static OpenAIException BadRequest(string message, string? param = null, string? code = null) => new(400, message, param: param, code: code);
}

/// <summary>Reading OpenAI request bodies (with errors that name the bad field) and writing OpenAI responses.</summary>
internal static class OpenAIProtocol
{
    // Relaxed escaping: the API answers JSON, never HTML, so quotes and apostrophes in text stay readable.
    public static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static async Task<JsonObject> ReadBodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        JsonNode? node;
        try
        {
            node = await JsonNode.ParseAsync(request.Body, cancellationToken: cancellationToken);
        }
        catch (JsonException e)
        {
            throw OpenAIException.BadRequest($"the request body is not valid JSON ({e.Message})", code: "invalid_json");
        }
        return node as JsonObject ?? throw OpenAIException.BadRequest("the request body must be a JSON object", code: "invalid_json");
    }

    public static Task WriteErrorAsync(HttpResponse response, OpenAIException error) =>
        WriteJsonAsync(response, error.Status, new JsonObject
        {
            ["error"] = new JsonObject
            {
                ["message"] = error.Message,
                ["type"] = error.Type,
                ["param"] = error.Param,
                ["code"] = error.Code,
            },
        });

    public static async Task WriteJsonAsync(HttpResponse response, int status, JsonNode body)
    {
        response.StatusCode = status;
        response.ContentType = "application/json";
        await response.WriteAsync(body.ToJsonString(Json));
    }

    /// <summary>Starts a server-sent event stream.</summary>
    public static async Task StartEventStreamAsync(HttpResponse response, CancellationToken cancellationToken)
    {
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        await response.StartAsync(cancellationToken);
    }

    public static async Task WriteEventAsync(HttpResponse response, string data, CancellationToken cancellationToken)
    {
        await response.WriteAsync("data: " + data + "\n\n", cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }

    public static string? OptionalString(JsonObject body, string name)
    {
        if (!body.TryGetPropertyValue(name, out var node) || node is null)
            return null;
        return node is JsonValue value && value.TryGetValue<string>(out var text) ? text : throw WrongType(name, "a string");
    }

    public static bool OptionalBool(JsonObject body, string name)
    {
        if (!body.TryGetPropertyValue(name, out var node) || node is null)
            return false;
        return node is JsonValue value && value.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? value.GetValue<bool>() : throw WrongType(name, "a boolean");
    }

    public static double? OptionalNumber(JsonObject body, string name, double min, double max)
    {
        if (!body.TryGetPropertyValue(name, out var node) || node is null)
            return null;
        if (node is not JsonValue value || value.GetValueKind() != JsonValueKind.Number)
            throw WrongType(name, "a number");
        var number = value.GetValue<double>();
        return number >= min && number <= max ? number : throw OpenAIException.BadRequest($"'{name}' must be between {min} and {max} (got {number})", name);
    }

    public static long? OptionalInteger(JsonObject body, string name, long min, long max)
    {
        if (!body.TryGetPropertyValue(name, out var node) || node is null)
            return null;
        if (node is not JsonValue value || value.GetValueKind() != JsonValueKind.Number || !value.TryGetValue<long>(out var number))
            throw WrongType(name, "an integer");
        return number >= min && number <= max ? number : throw OpenAIException.BadRequest($"'{name}' must be between {min} and {max} (got {number})", name);
    }

    /// <summary>'stop': a string or an array of up to 4 strings.</summary>
    public static IReadOnlyList<string> StopSequences(JsonObject body)
    {
        if (!body.TryGetPropertyValue("stop", out var node) || node is null)
            return [];
        if (node is JsonValue one && one.TryGetValue<string>(out var text))
            return text.Length > 0 ? [text] : [];
        if (node is JsonArray list && list.Count <= 4 && list.All(s => s is JsonValue v && v.TryGetValue<string>(out _)))
            return list.Select(s => s!.GetValue<string>()).Where(s => s.Length > 0).ToList();
        throw WrongType("stop", "a string or an array of at most 4 strings");
    }

    /// <summary>'n' other than 1 is not supported (each request decodes one sequence).</summary>
    public static void RequireSingleChoice(JsonObject body)
    {
        if (OptionalInteger(body, "n", 1, 128) is { } n && n != 1)
            throw OpenAIException.BadRequest("only n = 1 is supported: send several requests for several completions (they are batched)", "n");
    }

    public static bool IncludeUsage(JsonObject body) =>
        body.TryGetPropertyValue("stream_options", out var node) && node is JsonObject options && OptionalBool(options, "include_usage");

    public static OpenAIException WrongType(string name, string expected) =>
        OpenAIException.BadRequest($"'{name}' must be {expected}", name, "invalid_type");

    public static JsonObject Usage(int promptTokens, int completionTokens) => new()
    {
        ["prompt_tokens"] = promptTokens,
        ["completion_tokens"] = completionTokens,
        ["total_tokens"] = promptTokens + completionTokens,
    };

    public static long Now() => DateTimeOffset.UtcNow.ToUnixTimeSeconds();
}
