using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.AI;
using SharpTune.Serving;
using TorchSharp;

namespace SharpTune.Bench.Benchmarks;

/// <summary>
/// Load test of the OpenAI-compatible server on loopback: 32 concurrent streaming clients for 60 s (15 s with --quick),
/// each making at most 200 requests, served with continuous batching (32 sequences per forward pass) and then one
/// request at a time (batch size 1) in the same run. Every tenth request is malformed JSON, one a wrong type, one a huge
/// max_tokens (each must get a 400) and one disconnects abruptly mid-stream; the rest stream completions or chat
/// completions that must end with [DONE]. Any other outcome is a failure and fails the benchmark; the server must
/// still answer its health check at the end.
/// </summary>
public sealed class ServingBenchmark : IBenchmark
{
    private const int Clients = 32;
    private const int MaxRequestsPerClient = 200;

    public string Name => "serve";
    public string Description => "OpenAI-compatible server under 32 streaming clients with bad requests and disconnects mixed in: tokens/s batched vs one at a time; stories260K.";

    public IEnumerable<Measure> Run(BenchContext context)
    {
        var duration = TimeSpan.FromSeconds(context.Quick ? 15 : 60);
        var threads = Environment.GetEnvironmentVariable("SERVE_BENCH_THREADS") is { } t ? int.Parse(t) : torch.get_num_threads();
        torch.set_num_threads(threads);
        Console.Error.WriteLine($"serve: libtorch intra-op threads {torch.get_num_threads()}");
        using var language = LanguageModelService.FromPretrained(context.RepoPath("models", "stories260K"),
            new LanguageModelOptions { Device = context.Device, DType = context.DType, Batching = new BatchingOptions { MaxBatchSize = Clients, MaxQueuedRequests = 2 * Clients } });
        using var single = LanguageModelService.FromPretrained(context.RepoPath("models", "stories260K"),
            new LanguageModelOptions { Device = context.Device, DType = context.DType, Batching = new BatchingOptions { MaxBatchSize = 1, MaxQueuedRequests = 2 * Clients } });
        var batched = Load(language, duration);
        var oneByOne = Load(single, duration);
        foreach (var (label, result) in new[] { ("batched", batched), ("one at a time", oneByOne) })
        {
            if (result.Failures.Count > 0)
                throw new InvalidOperationException($"serve ({label}): {result.Failures.Count} failed requests, e.g. {string.Join("; ", result.Failures.Take(3))}");
            Console.Error.WriteLine($"serve ({label}): {result.Completed} streamed completions ({result.Tokens} tokens), {result.Rejected} bad requests answered 400, " +
                                    $"{result.Disconnected} abrupt disconnects, 0 failures, in {result.Elapsed.TotalSeconds:F1} s");
        }
        yield return new Measure(Name, $"{Clients} streaming clients, batch {Clients}", "tokens/s", batched.TokensPerSecond, "same server, batch 1", oneByOne.TokensPerSecond, HigherIsBetter: true);
        yield return new Measure(Name, "streamed completions per second", "requests/s", batched.Completed / batched.Elapsed.TotalSeconds,
            "same server, batch 1", oneByOne.Completed / oneByOne.Elapsed.TotalSeconds, HigherIsBetter: true);
        yield return new Measure(Name, "failed requests (both runs)", "requests", batched.Failures.Count + oneByOne.Failures.Count, "none allowed", null, HigherIsBetter: false);
    }

    private sealed class LoadResult
    {
        public int Completed;
        public long Tokens;
        public int Rejected;
        public int Disconnected;
        public List<string> Failures { get; } = [];
        public TimeSpan Elapsed;
        public double TokensPerSecond => Tokens / Elapsed.TotalSeconds;
    }

    private static LoadResult Load(LanguageModelService language, TimeSpan duration)
    {
        var server = SharpTuneServer.Create(new ServerOptions { Port = 0 }, language, logging: _ => { });
        server.StartAsync().GetAwaiter().GetResult();
        try
        {
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 4 * Clients, MaxResponseDrainSize = 0 })
            {
                BaseAddress = new Uri(server.Address),
                Timeout = TimeSpan.FromMinutes(10),
            };
            // Warm-up (JIT, first forward passes) outside the measured window.
            Stream(http, Request(0, 0, 8), abortAfter: null).GetAwaiter().GetResult();
            var result = new LoadResult();
            var watch = Stopwatch.StartNew();
            var deadline = DateTime.UtcNow + duration;
            var clients = Enumerable.Range(0, Clients).Select(client => Task.Run(async () =>
            {
                for (var i = 0; i < MaxRequestsPerClient && DateTime.UtcNow < deadline; i++)
                {
                    var kind = (client + i) % 10;
                    try
                    {
                        switch (kind)
                        {
                            case 0 or 1 or 2:
                                var body = kind switch
                                {
                                    0 => """{"prompt": "Once upon""",
                                    1 => """{"prompt": "Once upon a time", "max_tokens": "many", "temperature": [1]}""",
                                    _ => """{"prompt": "Once upon a time", "max_tokens": 100000000, "stream": true}""",
                                };
                                using (var response = await http.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json")))
                                {
                                    if (response.StatusCode != HttpStatusCode.BadRequest)
                                        throw new InvalidOperationException($"a bad request got {(int)response.StatusCode}");
                                    _ = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["message"]!.GetValue<string>();
                                }
                                Interlocked.Increment(ref result.Rejected);
                                break;
                            case 3:
                                await Stream(http, Request(client, i, 64), abortAfter: 3);
                                Interlocked.Increment(ref result.Disconnected);
                                break;
                            default:
                                var tokens = await Stream(http, Request(client, i, 24 + (client * 7 + i * 13) % 41, chat: kind == 4), abortAfter: null);
                                Interlocked.Increment(ref result.Completed);
                                Interlocked.Add(ref result.Tokens, tokens);
                                break;
                        }
                    }
                    catch (Exception e)
                    {
                        lock (result.Failures)
                            result.Failures.Add($"client {client} request {i} (kind {kind}): {e.GetType().Name}: {e.Message}");
                    }
                }
            })).ToArray();
            Task.WaitAll(clients);
            result.Elapsed = watch.Elapsed;
            var health = JsonNode.Parse(http.GetStringAsync("/health").GetAwaiter().GetResult())!;
            if ((string?)health["status"] != "ok")
                result.Failures.Add("the health check failed after the load");
            return result;
        }
        finally
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static (string Path, string Body) Request(int client, int index, int maxTokens, bool chat = false)
    {
        var seed = client * 1000 + index;
        return chat
            ? ("/v1/chat/completions", JsonSerializer.Serialize(new
            {
                messages = new[] { new { role = "user", content = "Tell me a story about a cat." } },
                max_tokens = maxTokens, temperature = 0.8, seed, stream = true, stream_options = new { include_usage = true },
            }))
            : ("/v1/completions", JsonSerializer.Serialize(new
            {
                prompt = "Once upon a time", max_tokens = maxTokens, temperature = 0.8, seed, stream = true, stream_options = new { include_usage = true },
            }));
    }

    /// <summary>Streams one request; returns its completion tokens (from the usage event) after checking it ends with
    /// [DONE], or aborts the connection after <paramref name="abortAfter"/> events.</summary>
    private static async Task<int> Stream(HttpClient http, (string Path, string Body) request, int? abortAfter)
    {
        using var abort = new CancellationTokenSource();
        using var message = new HttpRequestMessage(HttpMethod.Post, request.Path) { Content = new StringContent(request.Body, Encoding.UTF8, "application/json") };
        using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, abort.Token);
        if (response.StatusCode != HttpStatusCode.OK)
            throw new InvalidOperationException($"HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(abort.Token));
        var events = 0;
        int? tokens = null;
        while (await reader.ReadLineAsync(abort.Token) is { } line)
        {
            if (line.Length == 0)
                continue;
            if (!line.StartsWith("data: ", StringComparison.Ordinal))
                throw new InvalidOperationException($"not a server-sent event: {line}");
            var data = line["data: ".Length..];
            if (data == "[DONE]")
                return tokens ?? throw new InvalidOperationException("the stream ended without a usage event");
            var chunk = JsonNode.Parse(data)!;
            if (chunk["error"] is not null)
                throw new InvalidOperationException($"error event: {data}");
            if (chunk["usage"] is JsonObject usage)
                tokens = (int)usage["completion_tokens"]!;
            if (++events == abortAfter)
            {
                await abort.CancelAsync();
                return 0;
            }
        }
        throw new InvalidOperationException("the stream ended without data: [DONE]");
    }
}
