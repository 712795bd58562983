using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace SharpTune.Tests.Hub;

/// <summary>
/// A Hub-compatible HTTP server on loopback serving the parts of the Hub's API that downloads use, with the headers the
/// real Hub sends: <c>GET /api/models/{repo}/revision/{rev}</c> (sha, siblings); <c>HEAD|GET /{repo}/resolve/{rev}/{file}</c>
/// answering regular files with their git blob SHA-1 as ETag and LFS files (*.safetensors) with a 302 to
/// <c>/lfs/{sha256}</c> plus <c>X-Linked-Etag</c>/<c>X-Linked-Size</c>; <c>X-Repo-Commit</c> on resolve answers;
/// <c>X-Error-Code</c> RepoNotFound/RevisionNotFound/EntryNotFound/GatedRepo on errors; Range requests (206).
/// Faults can be injected: a connection cut mid-file, corrupted bytes, a slow transfer.
/// </summary>
internal sealed class LocalHub : IDisposable
{
    public sealed record Request(string Method, string Path, string? Range, string? Authorization);

    private sealed record Repo(Dictionary<string, Dictionary<string, byte[]>> Commits, Dictionary<string, string> Refs, string? GatedToken);

    private readonly HttpListener _listener = new();
    private readonly Task _loop;
    private readonly Dictionary<string, Repo> _repos = [];
    private readonly List<Request> _requests = [];

    public string Endpoint { get; }

    /// <summary>The next GET of this file (by name) sends half its bytes, then drops the connection.</summary>
    public string? CutOnce { get; set; }

    /// <summary>Every GET of this file (by name) serves it with one byte changed (the announced hashes stay right).</summary>
    public string? Corrupt { get; set; }

    /// <summary>Pause between 16 KiB chunks of file bodies (to make concurrent downloads overlap).</summary>
    public TimeSpan ChunkDelay { get; set; }

    public LocalHub()
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

    public IReadOnlyList<Request> Requests
    {
        get { lock (_requests) return _requests.ToList(); }
    }

    public void ClearRequests()
    {
        lock (_requests)
            _requests.Clear();
    }

    /// <summary>Adds a commit (a random 40-hex id) holding <paramref name="files"/> and points <paramref name="refs"/> at it.</summary>
    public string AddCommit(string repoId, IReadOnlyDictionary<string, byte[]> files, string[] refs, string? gatedToken = null)
    {
        if (!_repos.TryGetValue(repoId, out var repo))
            _repos[repoId] = repo = new Repo([], [], gatedToken);
        var commit = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20));
        repo.Commits[commit] = new Dictionary<string, byte[]>(files);
        foreach (var name in refs)
            repo.Refs[name] = commit;
        return commit;
    }

    public static Dictionary<string, byte[]> FolderFiles(string folder) =>
        Directory.EnumerateFiles(folder).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);

    public static string GitBlobSha1(byte[] content) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {content.Length}\0"), .. content]));

    public static string Sha256(byte[] content) => Convert.ToHexStringLower(SHA256.HashData(content));

    public static bool IsLfs(string file) => file.EndsWith(".safetensors", StringComparison.Ordinal);

    private async Task Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception) { return; }
            _ = Task.Run(() => Handle(context));
        }
    }

    private async Task Handle(HttpListenerContext context)
    {
        var request = context.Request;
        var response = context.Response;
        var path = Uri.UnescapeDataString(request.Url!.AbsolutePath);
        lock (_requests)
            _requests.Add(new Request(request.HttpMethod, path, request.Headers["Range"], request.Headers["Authorization"]));
        try
        {
            if (path.StartsWith("/api/models/", StringComparison.Ordinal) && path.Contains("/revision/", StringComparison.Ordinal))
            {
                var (repoId, rest) = Split(path["/api/models/".Length..], "/revision/");
                if (Find(repoId, request, response) is not { } repo)
                    return;
                if (Commit(repo, rest) is not { } commit)
                {
                    Error(response, 404, "RevisionNotFound", $"Invalid rev id: {rest}");
                    return;
                }
                var info = new JsonObject
                {
                    ["id"] = repoId,
                    ["sha"] = commit,
                    ["siblings"] = new JsonArray(repo.Commits[commit].Keys.Order(StringComparer.Ordinal).Select(f => (JsonNode?)new JsonObject { ["rfilename"] = f }).ToArray()),
                };
                await Write(response, 200, Encoding.UTF8.GetBytes(info.ToJsonString()), "application/json");
                return;
            }
            if (path.StartsWith("/lfs/", StringComparison.Ordinal))
            {
                var sha = path["/lfs/".Length..];
                var match = _repos.Values.SelectMany(r => r.Commits.Values).SelectMany(c => c).FirstOrDefault(f => IsLfs(f.Key) && Sha256(f.Value) == sha);
                if (match.Value is null)
                {
                    Error(response, 404, null, "no such object");
                    return;
                }
                await ServeBody(request, response, match.Key, match.Value);
                return;
            }
            if (path.Contains("/resolve/", StringComparison.Ordinal))
            {
                var (repoId, rest) = Split(path[1..], "/resolve/");
                if (Find(repoId, request, response) is not { } repo)
                    return;
                var slash = rest.IndexOf('/');
                if (Commit(repo, rest[..slash]) is not { } commit)
                {
                    Error(response, 404, "RevisionNotFound", $"Invalid rev id: {rest[..slash]}");
                    return;
                }
                var file = rest[(slash + 1)..];
                if (!repo.Commits[commit].TryGetValue(file, out var content))
                {
                    Error(response, 404, "EntryNotFound", $"{file} does not exist on \"{rest[..slash]}\"", request.HttpMethod == "HEAD");
                    return;
                }
                response.AddHeader("X-Repo-Commit", commit);
                if (IsLfs(file))
                {
                    response.AddHeader("X-Linked-Etag", $"\"{Sha256(content)}\"");
                    response.AddHeader("X-Linked-Size", content.Length.ToString());
                    response.AddHeader("ETag", "\"" + GitBlobSha1(Encoding.ASCII.GetBytes("pointer " + Sha256(content))) + "\"");
                    response.StatusCode = 302;
                    response.AddHeader("Location", $"{Endpoint}/lfs/{Sha256(content)}");
                    response.ContentLength64 = 0;
                    response.Close();
                    return;
                }
                response.AddHeader("ETag", $"\"{GitBlobSha1(content)}\"");
                await ServeBody(request, response, file, content);
                return;
            }
            Error(response, 404, null, "Not Found");
        }
        catch (Exception) when (!_listener.IsListening)
        {
        }
        catch (HttpListenerException)
        {
            // the client went away
        }
    }

    private async Task ServeBody(HttpListenerRequest request, HttpListenerResponse response, string file, byte[] content)
    {
        if (request.HttpMethod == "HEAD")
        {
            response.ContentLength64 = content.Length;
            response.Close();
            return;
        }
        if (Corrupt == file)
        {
            content = (byte[])content.Clone();
            content[content.Length / 2] ^= 0xFF;
        }
        var start = 0;
        if (request.Headers["Range"] is { } range && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            start = int.Parse(range["bytes=".Length..^1]);
            response.StatusCode = 206;
            response.AddHeader("Content-Range", $"bytes {start}-{content.Length - 1}/{content.Length}");
        }
        response.ContentLength64 = content.Length - start;
        var cut = false;
        lock (this)
            if (CutOnce == file)
            {
                CutOnce = null;
                cut = true;
            }
        var end = cut ? start + (content.Length - start) / 2 : content.Length;
        for (var offset = start; offset < end; offset += 16384)
        {
            await response.OutputStream.WriteAsync(content.AsMemory(offset, Math.Min(16384, end - offset)));
            if (ChunkDelay > TimeSpan.Zero)
                await Task.Delay(ChunkDelay);
        }
        if (cut)
        {
            await response.OutputStream.FlushAsync();
            response.Abort();
            return;
        }
        response.Close();
    }

    private Repo? Find(string repoId, HttpListenerRequest request, HttpListenerResponse response)
    {
        var authorization = request.Headers["Authorization"];
        if (!_repos.TryGetValue(repoId, out var repo))
        {
            // As the Hub: without a token an unknown repository may be private, so 401; with one, 404.
            Error(response, authorization is null ? 401 : 404, "RepoNotFound", "Repository not found");
            return null;
        }
        if (repo.GatedToken is { } token && authorization != $"Bearer {token}")
        {
            Error(response, authorization is null ? 401 : 403, "GatedRepo", $"Access to model {repoId} is restricted.");
            return null;
        }
        return repo;
    }

    private static string? Commit(Repo repo, string revision) =>
        repo.Commits.ContainsKey(revision) ? revision : repo.Refs.GetValueOrDefault(revision);

    private static (string RepoId, string Remainder) Split(string path, string marker)
    {
        var at = path.IndexOf(marker, StringComparison.Ordinal);
        return (path[..at], path[(at + marker.Length)..]);
    }

    private static void Error(HttpListenerResponse response, int status, string? code, string message, bool head = false)
    {
        response.StatusCode = status;
        if (code is not null)
            response.AddHeader("X-Error-Code", code);
        response.AddHeader("X-Error-Message", message);
        var body = head ? [] : Encoding.UTF8.GetBytes(new JsonObject { ["error"] = message }.ToJsonString());
        response.ContentLength64 = body.Length;
        response.OutputStream.Write(body);
        response.Close();
    }

    private static async Task Write(HttpListenerResponse response, int status, byte[] body, string contentType)
    {
        response.StatusCode = status;
        response.ContentType = contentType;
        response.ContentLength64 = body.Length;
        await response.OutputStream.WriteAsync(body);
        response.Close();
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}
