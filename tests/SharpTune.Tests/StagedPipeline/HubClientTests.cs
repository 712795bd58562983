using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Hub;
using SharpTune.StagedPipeline;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.StagedPipeline;

/// <summary>
/// The Hub client against a local fake of the Hub's HTTP API (HttpListener): checks the requests it builds —
/// repository creation, preupload, the LFS batch call and upload, the NDJSON commit — and how it reads the answers.
/// The real Hub is not contacted (no network here), so its acceptance of these requests is not tested.
/// </summary>
public class HubClientTests
{
    private sealed record Request(string Method, string Path, string? Authorization, string? ContentType, byte[] Body);

    private sealed class FakeHub : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly Task _loop;
        public readonly List<Request> Requests = [];
        public string Endpoint { get; }
        public string? LfsOid;
        /// <summary>Storage PUTs answered 503 before one succeeds.</summary>
        public int StorageFailures;

        public FakeHub()
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            Endpoint = $"http://127.0.0.1:{port}";
            _listener.Prefixes.Add(Endpoint + "/");
            _listener.Start();
            _loop = Task.Run(Serve);
        }

        private async Task Serve()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try { context = await _listener.GetContextAsync(); }
                catch (Exception) { return; }
                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                var request = new Request(context.Request.HttpMethod, context.Request.Url!.AbsolutePath, context.Request.Headers["Authorization"],
                    context.Request.ContentType, body.ToArray());
                lock (Requests)
                    Requests.Add(request);
                var (status, answer) = Answer(request);
                context.Response.StatusCode = status;
                var bytes = Encoding.UTF8.GetBytes(answer);
                await context.Response.OutputStream.WriteAsync(bytes);
                context.Response.Close();
            }
        }

        private (int, string) Answer(Request request)
        {
            if (request.Path == "/api/repos/create")
                return (409, """{"error": "You already created this model repo"}""");
            if (request.Path == "/api/models/me/tuned/preupload/main")
            {
                var files = JsonNode.Parse(request.Body)!["files"]!.AsArray();
                return (200, new JsonObject
                {
                    ["files"] = new JsonArray(files.Select(f => (JsonNode?)new JsonObject
                    {
                        ["path"] = f!["path"]!.GetValue<string>(),
                        ["uploadMode"] = f["path"]!.GetValue<string>().EndsWith(".safetensors") ? "lfs" : "regular",
                    }).ToArray()),
                }.ToJsonString());
            }
            if (request.Path == "/me/tuned.git/info/lfs/objects/batch")
            {
                var item = JsonNode.Parse(request.Body)!["objects"]![0]!;
                LfsOid = item["oid"]!.GetValue<string>();
                return (200, new JsonObject
                {
                    ["transfer"] = "basic",
                    ["objects"] = new JsonArray(new JsonObject
                    {
                        ["oid"] = LfsOid, ["size"] = item["size"]!.GetValue<long>(),
                        ["actions"] = new JsonObject
                        {
                            ["upload"] = new JsonObject { ["href"] = $"{Endpoint}/storage/{LfsOid}", ["header"] = new JsonObject { ["X-Upload-Token"] = "signed" } },
                            ["verify"] = new JsonObject { ["href"] = $"{Endpoint}/verify", ["header"] = new JsonObject() },
                        },
                    }),
                }.ToJsonString());
            }
            if (request.Path.StartsWith("/storage/") && Interlocked.Decrement(ref StorageFailures) >= 0)
                return (503, "Slow Down");
            if (request.Path.StartsWith("/storage/") || request.Path == "/verify")
                return (200, "");
            if (request.Path == "/api/models/me/tuned/commit/main")
                return (200, """{"commitOid": "0123abcd", "commitUrl": "https://huggingface.co/me/tuned/commit/0123abcd"}""");
            return (404, """{"error": "not found"}""");
        }

        public void Dispose()
        {
            _listener.Stop();
            _listener.Close();
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
    }

    [Fact]
    public async Task UploadFolderBuildsTheDocumentedRequests()
    {
        using var hub = new FakeHub();
        var folder = RepoPaths.NewTempDirectory();
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"model_type": "llama"}""");
        Directory.CreateDirectory(Path.Combine(folder, "adapter"));
        var weights = Enumerable.Range(0, 3000).Select(i => (byte)(i % 251)).ToArray();
        File.WriteAllBytes(Path.Combine(folder, "adapter", "adapter_model.safetensors"), weights);
        File.WriteAllText(Path.Combine(folder, ".stage-complete.json"), "{}");

        using var client = new HubClient("hf_secret", hub.Endpoint);
        var commit = await client.UploadFolderAsync("me/tuned", folder, "main", "Pipeline export");
        Assert.Equal("0123abcd", commit);

        var paths = hub.Requests.Select(r => $"{r.Method} {r.Path}").ToList();
        Assert.Equal(
        [
            "POST /api/repos/create", "POST /api/models/me/tuned/preupload/main", "POST /me/tuned.git/info/lfs/objects/batch",
            $"PUT /storage/{hub.LfsOid}", "POST /verify", "POST /api/models/me/tuned/commit/main",
        ], paths);
        // The token goes to the Hub, never to the presigned storage URL.
        Assert.All(hub.Requests.Where(r => !r.Path.StartsWith("/storage/")), r => Assert.Equal("Bearer hf_secret", r.Authorization));
        Assert.Null(hub.Requests.Single(r => r.Path.StartsWith("/storage/")).Authorization);

        var create = JsonNode.Parse(hub.Requests[0].Body)!;
        Assert.Equal(("tuned", "me", "model"), (create["name"]!.GetValue<string>(), create["organization"]!.GetValue<string>(), create["type"]!.GetValue<string>()));
        var preupload = JsonNode.Parse(hub.Requests[1].Body)!["files"]!.AsArray();
        Assert.Equal(["adapter/adapter_model.safetensors", "config.json"], preupload.Select(f => f!["path"]!.GetValue<string>()));
        Assert.Equal(Convert.ToBase64String(weights[..512]), preupload[0]!["sample"]!.GetValue<string>());
        Assert.StartsWith("application/vnd.git-lfs+json", hub.Requests[2].ContentType);
        var batch = JsonNode.Parse(hub.Requests[2].Body)!;
        Assert.Equal("upload", batch["operation"]!.GetValue<string>());
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(weights)), hub.LfsOid);
        Assert.Equal(weights, hub.Requests[3].Body);

        var commitRequest = hub.Requests[5];
        Assert.StartsWith("application/x-ndjson", commitRequest.ContentType);
        var lines = Encoding.UTF8.GetString(commitRequest.Body).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(["header", "lfsFile", "file"], lines.Select(l => l["key"]!.GetValue<string>()));
        Assert.Equal("Pipeline export", lines[0]["value"]!["summary"]!.GetValue<string>());
        Assert.Equal(hub.LfsOid, lines[1]["value"]!["oid"]!.GetValue<string>());
        Assert.Equal(3000, lines[1]["value"]!["size"]!.GetValue<long>());
        Assert.Equal("config.json", lines[2]["value"]!["path"]!.GetValue<string>());
        Assert.Equal("""{"model_type": "llama"}""", Encoding.UTF8.GetString(Convert.FromBase64String(lines[2]["value"]!["content"]!.GetValue<string>())));
    }

    [Fact]
    public async Task LfsUploadIsRetriedAfterAServerError()
    {
        using var hub = new FakeHub { StorageFailures = 1 };
        var folder = RepoPaths.NewTempDirectory();
        var weights = Enumerable.Range(0, 3000).Select(i => (byte)(i % 13)).ToArray();
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), weights);
        using var client = new HubClient("hf_secret", hub.Endpoint);
        Assert.Equal("0123abcd", await client.UploadFolderAsync("me/tuned", folder));
        var puts = hub.Requests.Where(r => r.Method == "PUT").ToList();
        Assert.Equal(2, puts.Count); // the 503, then the retry with the whole body again
        Assert.All(puts, put => Assert.Equal(weights, put.Body));
    }

    [Fact]
    public async Task HubErrorsAreReportedWithStatusAndBody()
    {
        using var hub = new FakeHub();
        var folder = RepoPaths.NewTempDirectory();
        File.WriteAllText(Path.Combine(folder, "config.json"), "{}");
        using var client = new HubClient("hf_secret", hub.Endpoint);
        var error = await Assert.ThrowsAsync<HubNotFoundException>(() => client.UploadFolderAsync("someone/else", folder));
        Assert.Contains("HTTP 404", error.Message);
        Assert.Contains("not found", error.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => client.UploadFolderAsync("no-owner", folder));
    }

    private static IReadOnlyDictionary<string, object?>? Export(string savedEndpoint, string runEndpoint, bool skipUpload = false)
    {
        var baseModel = RepoPaths.NewTempDirectory();
        File.WriteAllText(Path.Combine(baseModel, "config.json"), """{"model_type": "llama"}""");
        var work = RepoPaths.NewTempDirectory();
        var context = new PipelineContext
        {
            Settings = new PipelineSettings { Model = baseModel, Data = "data.jsonl", Hub = new HubSettings("me/tuned", "main", savedEndpoint) },
            OutputDirectory = work,
            HubToken = "hf_secret",
            HubEndpoint = runEndpoint,
            SkipUpload = skipUpload,
            CompletedFolder = stage => stage == "base" ? baseModel : null,
        };
        return new ExportStage().Run(context, Path.Combine(work, "export"));
    }

    [Fact]
    public void ExportSendsTheTokenOnlyToTheEndpointNamedInThisRun()
    {
        using var hub = new FakeHub();
        // pipeline.json (from an earlier run, or an untrusted folder) names an endpoint this run did not: refused, nothing sent.
        var redirected = Assert.Throws<ArgumentException>(() => Export(savedEndpoint: hub.Endpoint, runEndpoint: "https://huggingface.co"));
        Assert.Contains($"upload to the Hub at {hub.Endpoint}, but this run's Hub endpoint is https://huggingface.co", redirected.Message);
        Assert.Empty(hub.Requests);

        // Plain http to a host that is not loopback: refused before any connection.
        var plain = Assert.Throws<ArgumentException>(() => Export("http://hub.example.com", "http://hub.example.com"));
        Assert.Contains("refusing to send a Hugging Face token over plain http", plain.Message);

        // --skip-upload: exported, nothing uploaded.
        var skipped = Export(hub.Endpoint, hub.Endpoint, skipUpload: true)!;
        Assert.False(skipped.ContainsKey("hub_commit"));
        Assert.Empty(hub.Requests);

        // The endpoint named in this run (loopback http is allowed): uploaded with the token.
        var uploaded = Export(hub.Endpoint, hub.Endpoint + "/")!;
        Assert.Equal("0123abcd", uploaded["hub_commit"]);
        Assert.All(hub.Requests.Where(r => !r.Path.StartsWith("/storage/")), r => Assert.Equal("Bearer hf_secret", r.Authorization));
    }
}
