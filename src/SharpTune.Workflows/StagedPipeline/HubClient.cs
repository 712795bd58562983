using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.StagedPipeline;

/// <summary>
/// Uploads a folder to a Hugging Face Hub model repository over the Hub's HTTP API, as huggingface_hub's
/// <c>upload_folder</c> does: create the repository if needed (<c>POST /api/repos/create</c>), ask which files go
/// through LFS (<c>POST /api/models/{repo}/preupload/{revision}</c>), upload those with the Git LFS batch API
/// (<c>POST /{repo}.git/info/lfs/objects/batch</c>, then PUT — single part or multipart — and verify), and commit
/// everything in one NDJSON commit (<c>POST /api/models/{repo}/commit/{revision}</c>: a header line, then a
/// <c>file</c> line with base64 content per regular file and an <c>lfsFile</c> line per LFS file).
/// </summary>
public sealed class HubClient : IDisposable
{
    public const string DefaultEndpoint = "https://huggingface.co";
    private const string LfsMediaType = "application/vnd.git-lfs+json";
    private readonly HttpClient _http;
    // Presigned storage URLs (LFS uploads) get no Hub token: a client without the default Authorization header.
    private readonly HttpClient _storage;
    private readonly string _endpoint;

    public HubClient(string token, string endpoint = DefaultEndpoint, HttpMessageHandler? handler = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(token);
        _endpoint = endpoint.TrimEnd('/');
        handler ??= new SocketsHttpHandler();
        _http = new HttpClient(handler, disposeHandler: false) { Timeout = TimeSpan.FromMinutes(30) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("sharptune/1.0");
        _storage = new HttpClient(handler, disposeHandler: true) { Timeout = TimeSpan.FromMinutes(30) };
    }

    /// <summary>Uploads every file under <paramref name="folder"/> (hidden files excepted) in one commit; returns the
    /// commit id.</summary>
    public async Task<string> UploadFolderAsync(string repository, string folder, string revision = "main", string message = "Upload with SharpTune",
        CancellationToken cancellation = default)
    {
        if (!repository.Contains('/'))
            throw new ArgumentException($"Hub repository '{repository}' must be 'owner/name'");
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"nothing to upload: {folder} does not exist");
        var files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Select(f => (Local: f, Path: System.IO.Path.GetRelativePath(folder, f).Replace('\\', '/')))
            .Where(f => !f.Path.Split('/').Any(p => p.StartsWith('.')))
            .OrderBy(f => f.Path, StringComparer.Ordinal)
            .Select(f => new HubFile(f.Path, f.Local, new FileInfo(f.Local).Length, ExportArchive.FileDigest(f.Local)))
            .ToList();
        await CreateRepositoryAsync(repository, cancellation);
        var modes = await PreuploadAsync(repository, revision, files, cancellation);
        var lfs = files.Where(f => modes.GetValueOrDefault(f.Path) == "lfs").ToList();
        if (lfs.Count > 0)
            await UploadLfsAsync(repository, revision, lfs, cancellation);
        return await CommitAsync(repository, revision, message, files, lfs.Select(f => f.Path).ToHashSet(), cancellation);
    }

    private sealed record HubFile(string Path, string Local, long Size, string Sha256);

    private async Task CreateRepositoryAsync(string repository, CancellationToken cancellation)
    {
        var (organization, name) = (repository[..repository.IndexOf('/')], repository[(repository.IndexOf('/') + 1)..]);
        var body = new JsonObject { ["name"] = name, ["organization"] = organization, ["type"] = "model", ["private"] = true };
        using var response = await _http.PostAsync($"{_endpoint}/api/repos/create", Json(body), cancellation);
        if (response.StatusCode != HttpStatusCode.Conflict) // 409: it exists already
            await EnsureSuccess(response, "create repository " + repository, cancellation);
    }

    private async Task<Dictionary<string, string>> PreuploadAsync(string repository, string revision, IReadOnlyList<HubFile> files, CancellationToken cancellation)
    {
        var list = new JsonArray();
        foreach (var file in files)
        {
            var sample = new byte[Math.Min(512, file.Size)];
            await using (var stream = File.OpenRead(file.Local))
                await stream.ReadExactlyAsync(sample, cancellation);
            list.Add(new JsonObject { ["path"] = file.Path, ["sample"] = Convert.ToBase64String(sample), ["size"] = file.Size });
        }
        using var response = await _http.PostAsync($"{_endpoint}/api/models/{repository}/preupload/{Uri.EscapeDataString(revision)}",
            Json(new JsonObject { ["files"] = list }), cancellation);
        var answer = await ReadJson(response, "preupload", cancellation);
        return (answer["files"] as JsonArray ?? []).ToDictionary(f => f!["path"]!.GetValue<string>(), f => f!["uploadMode"]!.GetValue<string>());
    }

    private async Task UploadLfsAsync(string repository, string revision, IReadOnlyList<HubFile> files, CancellationToken cancellation)
    {
        var request = new JsonObject
        {
            ["operation"] = "upload",
            ["transfers"] = new JsonArray("basic", "multipart"),
            ["objects"] = new JsonArray(files.Select(f => (JsonNode?)new JsonObject { ["oid"] = f.Sha256, ["size"] = f.Size }).ToArray()),
            ["hash_algo"] = "sha256",
            ["ref"] = new JsonObject { ["name"] = $"refs/heads/{revision}" },
        };
        using var message = new HttpRequestMessage(HttpMethod.Post, $"{_endpoint}/{repository}.git/info/lfs/objects/batch")
        {
            Content = new StringContent(request.ToJsonString(), Encoding.UTF8, LfsMediaType),
        };
        message.Content.Headers.ContentType = new MediaTypeHeaderValue(LfsMediaType);
        message.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(LfsMediaType));
        using var response = await _http.SendAsync(message, cancellation);
        var answer = await ReadJson(response, "LFS batch", cancellation);
        foreach (var item in answer["objects"] as JsonArray ?? [])
        {
            var oid = item!["oid"]!.GetValue<string>();
            var file = files.First(f => f.Sha256 == oid);
            if (item["error"] is { } error)
                throw new IOException($"Hub LFS refused {file.Path}: {error.ToJsonString()}");
            if (item["actions"]?["upload"] is not JsonObject upload)
                continue; // already stored on the Hub
            var header = upload["header"] as JsonObject ?? [];
            if (header["chunk_size"] is { } chunkSize)
                await UploadMultipartAsync(file, upload["href"]!.GetValue<string>(), header, long.Parse(chunkSize.ToString()), cancellation);
            else
            {
                using var put = new HttpRequestMessage(HttpMethod.Put, upload["href"]!.GetValue<string>()) { Content = new StreamContent(File.OpenRead(file.Local)) };
                foreach (var (key, value) in header)
                    put.Headers.TryAddWithoutValidation(key, value!.ToString());
                using var putResponse = await _storage.SendAsync(put, cancellation);
                await EnsureSuccess(putResponse, "LFS upload of " + file.Path, cancellation);
            }
            if (item["actions"]?["verify"] is JsonObject verify)
            {
                using var check = new HttpRequestMessage(HttpMethod.Post, verify["href"]!.GetValue<string>())
                {
                    Content = Json(new JsonObject { ["oid"] = oid, ["size"] = file.Size }),
                };
                foreach (var (key, value) in verify["header"] as JsonObject ?? [])
                    check.Headers.TryAddWithoutValidation(key, value!.ToString());
                using var checkResponse = await _http.SendAsync(check, cancellation);
                await EnsureSuccess(checkResponse, "LFS verify of " + file.Path, cancellation);
            }
        }
    }

    /// <summary>Multipart LFS upload: the header lists a presigned URL per part ("00001", ...) and the chunk size; each
    /// part is PUT, then the completion (part numbers and ETags) is POSTed to the upload href.</summary>
    private async Task UploadMultipartAsync(HubFile file, string completionUrl, JsonObject header, long chunkSize, CancellationToken cancellation)
    {
        var parts = header.Where(h => int.TryParse(h.Key, out _)).OrderBy(h => int.Parse(h.Key)).ToList();
        var etags = new JsonArray();
        await using var stream = File.OpenRead(file.Local);
        var buffer = new byte[chunkSize];
        foreach (var (number, url) in parts)
        {
            var read = await stream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellation);
            using var put = new HttpRequestMessage(HttpMethod.Put, url!.ToString()) { Content = new ByteArrayContent(buffer, 0, read) };
            using var response = await _storage.SendAsync(put, cancellation);
            await EnsureSuccess(response, $"LFS part {number} of {file.Path}", cancellation);
            etags.Add(new JsonObject { ["partNumber"] = int.Parse(number), ["etag"] = response.Headers.ETag?.Tag ?? "" });
        }
        using var complete = await _http.PostAsync(completionUrl, Json(new JsonObject { ["oid"] = file.Sha256, ["parts"] = etags }), cancellation);
        await EnsureSuccess(complete, "LFS multipart completion of " + file.Path, cancellation);
    }

    private async Task<string> CommitAsync(string repository, string revision, string summary, IReadOnlyList<HubFile> files, HashSet<string> lfs,
        CancellationToken cancellation)
    {
        var body = new StringBuilder();
        body.Append(new JsonObject { ["key"] = "header", ["value"] = new JsonObject { ["summary"] = summary, ["description"] = "" } }.ToJsonString()).Append('\n');
        foreach (var file in files)
        {
            JsonObject line = lfs.Contains(file.Path)
                ? new() { ["key"] = "lfsFile", ["value"] = new JsonObject { ["path"] = file.Path, ["algo"] = "sha256", ["oid"] = file.Sha256, ["size"] = file.Size } }
                : new() { ["key"] = "file", ["value"] = new JsonObject { ["content"] = Convert.ToBase64String(await File.ReadAllBytesAsync(file.Local, cancellation)), ["path"] = file.Path, ["encoding"] = "base64" } };
            body.Append(line.ToJsonString()).Append('\n');
        }
        using var content = new StringContent(body.ToString(), Encoding.UTF8, "application/x-ndjson");
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-ndjson");
        using var response = await _http.PostAsync($"{_endpoint}/api/models/{repository}/commit/{Uri.EscapeDataString(revision)}", content, cancellation);
        var answer = await ReadJson(response, "commit", cancellation);
        return answer["commitOid"]?.GetValue<string>() ?? throw new IOException($"Hub commit to {repository} returned no commitOid");
    }

    private static StringContent Json(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    private static async Task<JsonObject> ReadJson(HttpResponseMessage response, string what, CancellationToken cancellation)
    {
        await EnsureSuccess(response, what, cancellation);
        var text = await response.Content.ReadAsStringAsync(cancellation);
        try
        {
            return JsonNode.Parse(text) as JsonObject ?? throw new IOException($"Hub {what}: expected a JSON object, got: {Truncate(text)}");
        }
        catch (JsonException)
        {
            throw new IOException($"Hub {what}: the answer is not JSON: {Truncate(text)}");
        }
    }

    private static async Task EnsureSuccess(HttpResponseMessage response, string what, CancellationToken cancellation)
    {
        if (response.IsSuccessStatusCode)
            return;
        var text = await response.Content.ReadAsStringAsync(cancellation);
        throw new IOException($"Hub {what} failed: HTTP {(int)response.StatusCode} {response.ReasonPhrase}: {Truncate(text)}");
    }

    private static string Truncate(string text) => text.Length > 300 ? text[..300] + "..." : text;

    public void Dispose()
    {
        _http.Dispose();
        _storage.Dispose();
    }
}
