using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace SharpTune.Hub;

/// <summary>Progress of a download: the file being fetched (<paramref name="FileIndex"/> of
/// <paramref name="FileCount"/>, from 0) and its bytes so far; <paramref name="FileBytesTotal"/> is -1 when unknown.</summary>
public sealed record HubDownloadProgress(string RepoId, string File, int FileIndex, int FileCount, long FileBytesDone, long FileBytesTotal);

/// <summary>
/// The Hugging Face Hub over HTTP, sharing one token, endpoint and retry policy between its halves.
/// <para>Download, as huggingface_hub's <c>hf_hub_download</c>/<c>snapshot_download</c>: resolve the revision to a commit
/// (<c>GET /api/models/{repo}/revision/{revision}</c>), then per file a <c>HEAD /{repo}/resolve/{commit}/{file}</c>
/// whose <c>X-Linked-Etag</c>/<c>ETag</c>, <c>X-Linked-Size</c>/<c>Content-Length</c> and <c>Location</c> (the LFS storage
/// redirect) name the blob, then a GET into <c>blobs/&lt;etag&gt;.incomplete</c> (resumed with a Range request after an
/// interruption), verified (SHA-256 for LFS files, git's blob SHA-1 otherwise), renamed into place under a lock shared
/// with other processes, and linked from the snapshot.</para>
/// <para>Upload, as <c>upload_folder</c>: create the repository if needed (<c>POST /api/repos/create</c>), ask which files
/// go through LFS (<c>POST /api/models/{repo}/preupload/{revision}</c>), upload those with the Git LFS batch API (single
/// part or multipart, then verify) and commit everything in one NDJSON commit.</para>
/// The token goes only to the endpoint's own origin (never to storage redirects or presigned URLs), and never over
/// plain http unless the endpoint is loopback.
/// </summary>
public sealed class HubClient : IDisposable
{
    public const string DefaultEndpoint = HubOptions.DefaultEndpoint;
    private const string LfsMediaType = "application/vnd.git-lfs+json";
    private const int MaxRedirects = 5;
    private readonly HttpClient _http;
    private readonly Uri _endpoint;

    public HubClient(HubOptions? options = null, HttpMessageHandler? handler = null)
    {
        Options = options ?? HubOptions.FromEnvironment();
        if (!Uri.TryCreate(Options.Endpoint, UriKind.Absolute, out var endpoint) || (endpoint.Scheme != Uri.UriSchemeHttps && endpoint.Scheme != Uri.UriSchemeHttp))
            throw new ArgumentException($"Hub endpoint '{Options.Endpoint}' is not an http(s) URL");
        if (Options.Token is not null)
            HubOptions.EnsureTokenSafe(Options.Endpoint);
        _endpoint = endpoint;
        Cache = new HubCache(Options.CacheDirectory);
        // Redirects are followed by hand: the token must not follow them to another origin, and the first answer's headers name the blob.
        handler ??= new SocketsHttpHandler { AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None };
        _http = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("sharptune/1.0");
    }

    /// <summary>An uploading client: the token (required) is bound to <paramref name="endpoint"/>.</summary>
    public HubClient(string token, string endpoint = DefaultEndpoint, HttpMessageHandler? handler = null)
        : this(new HubOptions { CacheDirectory = HubOptions.FromEnvironment().CacheDirectory, Token = RequireToken(token), Endpoint = endpoint.TrimEnd('/') }, handler)
    {
    }

    public HubOptions Options { get; }

    public HubCache Cache { get; }

    public string Endpoint => Options.Endpoint.TrimEnd('/');

    private static string RequireToken(string token)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(token);
        return token;
    }

    // ---------------------------------------------------------------- download

    /// <summary>Makes the cache hold <paramref name="selection"/>'s files of <paramref name="repoId"/> at
    /// <paramref name="revision"/> and returns the snapshot folder. Files already cached are not requested; offline (or
    /// with the Hub unreachable) the cached snapshot is returned, and a revision the cache lacks is a
    /// <see cref="HubOfflineException"/>.</summary>
    public async Task<string> DownloadSnapshotAsync(string repoId, string revision = RepoReference.DefaultRevision, HubFileSelection? selection = null,
        IProgress<HubDownloadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        selection ??= HubFileSelection.Model;
        if (Options.Offline)
            return CachedSnapshot(repoId, revision, "HF_HUB_OFFLINE is set");
        string commit;
        IReadOnlyList<string> files;
        try
        {
            (commit, files) = await RevisionInfoAsync(repoId, revision, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            return CachedSnapshot(repoId, revision, $"the Hub at {Endpoint} cannot be reached ({e.Message})", e);
        }
        Cache.WriteRef(repoId, revision, commit);
        var wanted = selection.Select(files).ToList();
        if (wanted.Count == 0)
            throw new HubNotFoundException($"{repoId}@{revision} has no {selection.Description} (it holds: {Abbreviate(files)})");
        var snapshot = Cache.SnapshotPath(repoId, commit);
        Directory.CreateDirectory(snapshot);
        for (var i = 0; i < wanted.Count; i++)
        {
            var path = await DownloadFileAsync(repoId, commit, wanted[i], i, wanted.Count, progress, cancellationToken);
            if (selection.FollowsWeightIndex && wanted[i].EndsWith(".safetensors.index.json", StringComparison.Ordinal))
                foreach (var shard in HubFileSelection.Shards(path).Where(s => !wanted.Contains(s)))
                {
                    if (!files.Contains(shard))
                        throw new HubNotFoundException($"{repoId}@{revision}: {wanted[i]} names the shard {shard}, which the repository does not hold");
                    wanted.Add(shard);
                }
        }
        return snapshot;
    }

    /// <summary>Downloads one file (or finds it cached) and returns its path in the snapshot.</summary>
    public async Task<string> DownloadFileAsync(string repoId, string file, string revision = RepoReference.DefaultRevision,
        IProgress<HubDownloadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (Options.Offline)
            return CachedFile(repoId, revision, file, "HF_HUB_OFFLINE is set");
        string commit;
        try
        {
            commit = RepoReference.IsCommitHash(revision) ? revision : (await RevisionInfoAsync(repoId, revision, cancellationToken)).Commit;
        }
        catch (HttpRequestException e)
        {
            return CachedFile(repoId, revision, file, $"the Hub at {Endpoint} cannot be reached ({e.Message})", e);
        }
        Cache.WriteRef(repoId, revision, commit);
        return await DownloadFileAsync(repoId, commit, file, 0, 1, progress, cancellationToken);
    }

    private string CachedSnapshot(string repoId, string revision, string why, Exception? inner = null)
    {
        if (Cache.ResolveCommit(repoId, revision) is not { } commit)
            throw new HubOfflineException($"{Describe(repoId, revision)} is not in the Hugging Face cache ({Cache.Directory}) and {why}: " +
                                            "offline, it cannot be downloaded", inner);
        if (inner is not null)
            Options.Logger.LogWarning("{Why}: using the cached snapshot {Commit} of {Repo}", why, commit, Describe(repoId, revision));
        return Cache.SnapshotPath(repoId, commit);
    }

    private string CachedFile(string repoId, string revision, string file, string why, Exception? inner = null)
    {
        var snapshot = CachedSnapshot(repoId, revision, why, inner);
        if (Cache.IsKnownMissing(repoId, Path.GetFileName(snapshot), file))
            throw new HubNotFoundException($"file {file} does not exist in {Describe(repoId, revision)} (the cache recorded its absence)");
        var path = Path.Combine(snapshot, file);
        return File.Exists(path)
            ? path
            : throw new HubOfflineException($"{file} of {Describe(repoId, revision)} is not in the Hugging Face cache ({Cache.Directory}) and {why}: " +
                                            "offline, it cannot be downloaded", inner);
    }

    private static string Describe(string repoId, string revision) => revision == RepoReference.DefaultRevision ? repoId : $"{repoId}@{revision}";

    private async Task<(string Commit, IReadOnlyList<string> Files)> RevisionInfoAsync(string repoId, string revision, CancellationToken cancellationToken)
    {
        var url = $"{Endpoint}/api/models/{repoId}/revision/{Uri.EscapeDataString(revision)}";
        // An unreachable Hub is not waited for: the cache answers at once (as huggingface_hub falls back to it).
        using var response = await SendWithRetryAsync(() => new HttpRequestMessage(HttpMethod.Get, url), authorize: true, cancellationToken,
            retryUnreachable: false);
        await EnsureSuccess(response, $"model info of {Describe(repoId, revision)}", repoId, revision, file: null, cancellationToken);
        var info = JsonNode.Parse(await response.Content.ReadAsStringAsync(cancellationToken)) as JsonObject
                   ?? throw new HubException($"Hub model info of {repoId}: expected a JSON object");
        var commit = info["sha"]?.GetValue<string>() is { } sha && RepoReference.IsCommitHash(sha)
            ? sha
            : throw new HubException($"Hub model info of {Describe(repoId, revision)} has no commit hash ('sha')");
        var files = (info["siblings"] as JsonArray ?? []).Select(s => s?["rfilename"]?.GetValue<string>()).OfType<string>().ToList();
        return (commit, files);
    }

    private async Task<string> DownloadFileAsync(string repoId, string commit, string file, int index, int count,
        IProgress<HubDownloadProgress>? progress, CancellationToken cancellationToken)
    {
        ValidateRelativePath(file);
        var pointer = Path.Combine(Cache.SnapshotPath(repoId, commit), file);
        if (File.Exists(pointer)) // a dangling link (blob removed) is not a hit
        {
            var cached = HubCache.ContentLength(pointer);
            progress?.Report(new HubDownloadProgress(repoId, file, index, count, cached, cached));
            return pointer;
        }
        var url = $"{Endpoint}/{repoId}/resolve/{commit}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}";
        var (etag, size, location) = await FileMetadataAsync(url, repoId, commit, file, cancellationToken);
        var blob = Cache.BlobPath(repoId, etag);
        if (!File.Exists(blob))
        {
            await using var fileLock = await HubCache.LockAsync(Cache.LockPath(repoId, etag), cancellationToken);
            if (!File.Exists(blob)) // another process may have finished it while this one waited
            {
                Options.Logger.LogInformation("downloading {File} of {Repo} ({Bytes} bytes)", file, repoId, size);
                // The token goes to the Hub's resolve URL, not to the storage it redirects to.
                await DownloadBlobAsync(location ?? url, authorize: location is null, blob, etag, size, repoId, file, index, count, progress, cancellationToken);
            }
        }
        progress?.Report(new HubDownloadProgress(repoId, file, index, count, HubCache.ContentLength(blob), HubCache.ContentLength(blob)));
        return Cache.LinkSnapshotFile(repoId, commit, file, etag);
    }

    private static void ValidateRelativePath(string file)
    {
        if (file.Length == 0 || Path.IsPathRooted(file) || file.Contains('\\') || file.Split('/').Any(p => p is "" or "." or ".."))
            throw new HubException($"refusing the repository file name '{file}': not a plain relative path");
    }

    /// <summary>HEAD on the resolve URL, following the Hub's own (relative) redirects but not the storage one, whose
    /// Location is where the bytes are.</summary>
    private async Task<(string Etag, long Size, string? Location)> FileMetadataAsync(string url, string repoId, string commit, string file,
        CancellationToken cancellationToken)
    {
        var current = url;
        for (var hop = 0; ; hop++)
        {
            var target = current;
            using var response = await SendWithRetryAsync(() =>
            {
                var head = new HttpRequestMessage(HttpMethod.Head, target);
                head.Headers.AcceptEncoding.ParseAdd("identity");
                return head;
            }, authorize: true, cancellationToken);
            if (IsRedirect(response.StatusCode) && response.Headers.Location is { } location)
            {
                var absolute = new Uri(new Uri(target), location);
                if (!location.IsAbsoluteUri && hop < MaxRedirects)
                {
                    current = absolute.ToString();
                    continue;
                }
                return (Etag(response) ?? throw NoEtag(file), Size(response), absolute.ToString());
            }
            if (response.StatusCode == HttpStatusCode.NotFound && response.Headers.TryGetValues("X-Error-Code", out var codes) && codes.Contains("EntryNotFound"))
                Cache.MarkMissing(repoId, commit, file);
            await EnsureSuccess(response, $"metadata of {file}", repoId, commit, file, cancellationToken);
            return (Etag(response) ?? throw NoEtag(file), Size(response), null);
        }

        HubException NoEtag(string name) => new($"the Hub sent no ETag for {name} of {repoId}: cannot place it in the cache");
    }

    private static string? Etag(HttpResponseMessage response)
    {
        var raw = Header(response, "X-Linked-Etag") ?? response.Headers.ETag?.Tag ?? Header(response, "ETag");
        if (raw is null)
            return null;
        var etag = raw.StartsWith("W/", StringComparison.Ordinal) ? raw[2..] : raw;
        etag = etag.Trim('"');
        // The etag names a file in blobs/: anything but a plain token could escape that folder.
        return etag.Length > 0 && etag.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') && etag[0] != '.' ? etag : null;
    }

    private static long Size(HttpResponseMessage response) =>
        long.TryParse(Header(response, "X-Linked-Size"), out var linked) ? linked : response.Content.Headers.ContentLength ?? -1;

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values) ? values.FirstOrDefault() : null;

    private static bool IsRedirect(HttpStatusCode status) => (int)status is >= 300 and < 400;

    private async Task DownloadBlobAsync(string url, bool authorize, string blob, string etag, long size, string repoId, string file, int index, int count,
        IProgress<HubDownloadProgress>? progress, CancellationToken cancellationToken)
    {
        var incomplete = blob + ".incomplete";
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var have = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
                if (size >= 0 && have > size)
                {
                    File.Delete(incomplete);
                    have = 0;
                }
                if (size < 0 || have < size)
                    await FetchIntoAsync(url, authorize, incomplete, have, size, repoId, file, index, count, progress, cancellationToken);
                break;
            }
            catch (Exception e) when (e is HttpRequestException or IOException && e is not HubException && attempt < Options.MaxAttempts
                                      && !cancellationToken.IsCancellationRequested)
            {
                Options.Logger.LogWarning("download of {File} interrupted ({Error}); resuming, attempt {Attempt} of {Attempts}", file, e.Message, attempt + 1, Options.MaxAttempts);
                await Task.Delay(Backoff(attempt), cancellationToken);
            }
        }
        var length = new FileInfo(incomplete).Length;
        if (size >= 0 && length != size)
        {
            File.Delete(incomplete);
            throw new HubChecksumException($"{file} of {repoId}: downloaded {length} bytes, the Hub announced {size}; the download was discarded");
        }
        var actual = etag.Length switch
        {
            64 => await Sha256Async(incomplete, cancellationToken),
            40 => await GitBlobSha1Async(incomplete, length, cancellationToken),
            _ => null,
        };
        if (actual is not null && !string.Equals(actual, etag, StringComparison.OrdinalIgnoreCase))
        {
            File.Delete(incomplete);
            throw new HubChecksumException($"{file} of {repoId} is corrupted: its {(etag.Length == 64 ? "SHA-256" : "git SHA-1")} is {actual}, " +
                                           $"the Hub announced {etag}; the download was discarded");
        }
        File.Move(incomplete, blob);
    }

    private async Task FetchIntoAsync(string url, bool authorize, string incomplete, long have, long size, string repoId, string file, int index, int count,
        IProgress<HubDownloadProgress>? progress, CancellationToken cancellationToken)
    {
        var current = url;
        for (var hop = 0; ; hop++)
        {
            var target = current;
            using var response = await SendWithRetryAsync(() =>
            {
                var get = new HttpRequestMessage(HttpMethod.Get, target);
                if (have > 0)
                    get.Headers.Range = new RangeHeaderValue(have, null);
                return get;
            }, authorize: authorize && hop == 0, cancellationToken, HttpCompletionOption.ResponseHeadersRead);
            if (IsRedirect(response.StatusCode) && response.Headers.Location is { } location && hop < MaxRedirects)
            {
                current = new Uri(new Uri(target), location).ToString();
                continue;
            }
            if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                File.Delete(incomplete); // the partial file does not fit what is served now: start over
                throw new IOException($"range request for {file} refused; restarting the download");
            }
            await EnsureSuccess(response, $"download of {file}", repoId, null, file, cancellationToken);
            var append = response.StatusCode == HttpStatusCode.PartialContent;
            var done = append ? have : 0;
            await using var output = new FileStream(incomplete, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
            await using var input = await response.Content.ReadAsStreamAsync(cancellationToken);
            var buffer = new byte[1 << 16];
            int read;
            while ((read = await input.ReadAsync(buffer, cancellationToken)) > 0)
            {
                await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                done += read;
                progress?.Report(new HubDownloadProgress(repoId, file, index, count, done, size));
            }
            return;
        }
    }

    private static async Task<string> Sha256Async(string path, CancellationToken cancellationToken)
    {
        await using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken));
    }

    /// <summary>The id git gives a file's content ("blob {size}\0" + bytes), which the Hub sends as ETag of non-LFS files.</summary>
    private static async Task<string> GitBlobSha1Async(string path, long length, CancellationToken cancellationToken)
    {
        using var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        sha1.AppendData(Encoding.ASCII.GetBytes($"blob {length}\0"));
        await using var stream = File.OpenRead(path);
        var buffer = new byte[1 << 16];
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
            sha1.AppendData(buffer, 0, read);
        return Convert.ToHexStringLower(sha1.GetHashAndReset());
    }

    // ---------------------------------------------------------------- upload

    /// <summary>Uploads every file under <paramref name="folder"/> (hidden files excepted) in one commit; returns the
    /// commit id.</summary>
    public async Task<string> UploadFolderAsync(string repository, string folder, string revision = "main", string message = "Upload with SharpTune",
        CancellationToken cancellationToken = default)
    {
        if (Options.Token is null)
            throw new HubAccessDeniedException($"uploading to {Endpoint} needs a token with write access (HF_TOKEN)");
        if (!RepoReference.TryParse(repository, out _) || repository.Contains('@'))
            throw new ArgumentException($"Hub repository '{repository}' must be 'owner/name'");
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"nothing to upload: {folder} does not exist");
        var files = new List<HubFile>();
        foreach (var (local, path) in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
                     .Select(f => (Local: f, Path: Path.GetRelativePath(folder, f).Replace('\\', '/')))
                     .Where(f => !f.Path.Split('/').Any(p => p.StartsWith('.')))
                     .OrderBy(f => f.Path, StringComparer.Ordinal))
            files.Add(new HubFile(path, local, HubCache.ContentLength(local), await Sha256Async(local, cancellationToken)));
        await CreateRepositoryAsync(repository, cancellationToken);
        var modes = await PreuploadAsync(repository, revision, files, cancellationToken);
        var lfs = files.Where(f => modes.GetValueOrDefault(f.Path) == "lfs").ToList();
        if (lfs.Count > 0)
            await UploadLfsAsync(repository, revision, lfs, cancellationToken);
        return await CommitAsync(repository, revision, message, files, lfs.Select(f => f.Path).ToHashSet(), cancellationToken);
    }

    private sealed record HubFile(string Path, string Local, long Size, string Sha256);

    private async Task CreateRepositoryAsync(string repository, CancellationToken cancellationToken)
    {
        var (organization, name) = (repository[..repository.IndexOf('/')], repository[(repository.IndexOf('/') + 1)..]);
        var body = new JsonObject { ["name"] = name, ["organization"] = organization, ["type"] = "model", ["private"] = true };
        using var response = await SendWithRetryAsync(() => Post($"{Endpoint}/api/repos/create", Json(body)), authorize: true, cancellationToken);
        if (response.StatusCode != HttpStatusCode.Conflict) // 409: it exists already
            await EnsureSuccess(response, "create repository " + repository, repository, null, null, cancellationToken);
    }

    private async Task<Dictionary<string, string>> PreuploadAsync(string repository, string revision, IReadOnlyList<HubFile> files, CancellationToken cancellationToken)
    {
        var list = new JsonArray();
        foreach (var file in files)
        {
            var sample = new byte[Math.Min(512, file.Size)];
            await using (var stream = File.OpenRead(file.Local))
                await stream.ReadExactlyAsync(sample, cancellationToken);
            list.Add(new JsonObject { ["path"] = file.Path, ["sample"] = Convert.ToBase64String(sample), ["size"] = file.Size });
        }
        var body = new JsonObject { ["files"] = list };
        using var response = await SendWithRetryAsync(() => Post($"{Endpoint}/api/models/{repository}/preupload/{Uri.EscapeDataString(revision)}", Json(body)),
            authorize: true, cancellationToken);
        var answer = await ReadJson(response, "preupload", repository, cancellationToken);
        return (answer["files"] as JsonArray ?? []).ToDictionary(f => f!["path"]!.GetValue<string>(), f => f!["uploadMode"]!.GetValue<string>());
    }

    private async Task UploadLfsAsync(string repository, string revision, IReadOnlyList<HubFile> files, CancellationToken cancellationToken)
    {
        var request = new JsonObject
        {
            ["operation"] = "upload",
            ["transfers"] = new JsonArray("basic", "multipart"),
            ["objects"] = new JsonArray(files.Select(f => (JsonNode?)new JsonObject { ["oid"] = f.Sha256, ["size"] = f.Size }).ToArray()),
            ["hash_algo"] = "sha256",
            ["ref"] = new JsonObject { ["name"] = $"refs/heads/{revision}" },
        };
        using var response = await SendWithRetryAsync(() =>
        {
            var message = new HttpRequestMessage(HttpMethod.Post, $"{Endpoint}/{repository}.git/info/lfs/objects/batch")
            {
                Content = new StringContent(request.ToJsonString(), Encoding.UTF8, LfsMediaType),
            };
            message.Content.Headers.ContentType = new MediaTypeHeaderValue(LfsMediaType);
            message.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(LfsMediaType));
            return message;
        }, authorize: true, cancellationToken);
        var answer = await ReadJson(response, "LFS batch", repository, cancellationToken);
        foreach (var item in answer["objects"] as JsonArray ?? [])
        {
            var oid = item!["oid"]!.GetValue<string>();
            var file = files.First(f => f.Sha256 == oid);
            if (item["error"] is { } error)
                throw new HubException($"Hub LFS refused {file.Path}: {error.ToJsonString()}");
            if (item["actions"]?["upload"] is not JsonObject upload)
                continue; // already stored on the Hub
            var header = upload["header"] as JsonObject ?? [];
            var href = upload["href"]!.GetValue<string>();
            if (header["chunk_size"] is { } chunkSize)
                await UploadMultipartAsync(file, href, header, long.Parse(chunkSize.ToString()), cancellationToken);
            else
            {
                // Presigned storage URL: no token.
                using var put = await SendWithRetryAsync(() =>
                {
                    var message = new HttpRequestMessage(HttpMethod.Put, href) { Content = new StreamContent(File.OpenRead(file.Local)) };
                    foreach (var (key, value) in header)
                        message.Headers.TryAddWithoutValidation(key, value!.ToString());
                    return message;
                }, authorize: false, cancellationToken);
                await EnsureSuccess(put, "LFS upload of " + file.Path, repository, null, null, cancellationToken);
            }
            if (item["actions"]?["verify"] is JsonObject verify)
            {
                using var check = await SendWithRetryAsync(() =>
                {
                    var message = Post(verify["href"]!.GetValue<string>(), Json(new JsonObject { ["oid"] = oid, ["size"] = file.Size }));
                    foreach (var (key, value) in verify["header"] as JsonObject ?? [])
                        message.Headers.TryAddWithoutValidation(key, value!.ToString());
                    return message;
                }, authorize: true, cancellationToken);
                await EnsureSuccess(check, "LFS verify of " + file.Path, repository, null, null, cancellationToken);
            }
        }
    }

    /// <summary>Multipart LFS upload: the header lists a presigned URL per part ("00001", ...) and the chunk size; each
    /// part is PUT (retried on its own), then the completion (part numbers and ETags) is POSTed to the upload href.</summary>
    private async Task UploadMultipartAsync(HubFile file, string completionUrl, JsonObject header, long chunkSize, CancellationToken cancellationToken)
    {
        var parts = header.Where(h => int.TryParse(h.Key, out _)).OrderBy(h => int.Parse(h.Key)).ToList();
        var etags = new JsonArray();
        await using var stream = File.OpenRead(file.Local);
        var buffer = new byte[chunkSize];
        foreach (var (number, url) in parts)
        {
            var read = await stream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
            using var response = await SendWithRetryAsync(() => new HttpRequestMessage(HttpMethod.Put, url!.ToString()) { Content = new ByteArrayContent(buffer, 0, read) },
                authorize: false, cancellationToken);
            await EnsureSuccess(response, $"LFS part {number} of {file.Path}", null, null, null, cancellationToken);
            etags.Add(new JsonObject { ["partNumber"] = int.Parse(number), ["etag"] = response.Headers.ETag?.Tag ?? "" });
        }
        var body = new JsonObject { ["oid"] = file.Sha256, ["parts"] = etags };
        using var complete = await SendWithRetryAsync(() => Post(completionUrl, Json(body)), authorize: true, cancellationToken);
        await EnsureSuccess(complete, "LFS multipart completion of " + file.Path, null, null, null, cancellationToken);
    }

    private async Task<string> CommitAsync(string repository, string revision, string summary, IReadOnlyList<HubFile> files, HashSet<string> lfs,
        CancellationToken cancellationToken)
    {
        var body = new StringBuilder();
        body.Append(new JsonObject { ["key"] = "header", ["value"] = new JsonObject { ["summary"] = summary, ["description"] = "" } }.ToJsonString()).Append('\n');
        foreach (var file in files)
        {
            JsonObject line = lfs.Contains(file.Path)
                ? new() { ["key"] = "lfsFile", ["value"] = new JsonObject { ["path"] = file.Path, ["algo"] = "sha256", ["oid"] = file.Sha256, ["size"] = file.Size } }
                : new() { ["key"] = "file", ["value"] = new JsonObject { ["content"] = Convert.ToBase64String(await File.ReadAllBytesAsync(file.Local, cancellationToken)), ["path"] = file.Path, ["encoding"] = "base64" } };
            body.Append(line.ToJsonString()).Append('\n');
        }
        var text = body.ToString();
        using var response = await SendWithRetryAsync(() =>
        {
            var content = new StringContent(text, Encoding.UTF8, "application/x-ndjson");
            content.Headers.ContentType = new MediaTypeHeaderValue("application/x-ndjson");
            return Post($"{Endpoint}/api/models/{repository}/commit/{Uri.EscapeDataString(revision)}", content);
        }, authorize: true, cancellationToken);
        var answer = await ReadJson(response, "commit", repository, cancellationToken);
        return answer["commitOid"]?.GetValue<string>() ?? throw new HubException($"Hub commit to {repository} returned no commitOid");
    }

    // ---------------------------------------------------------------- shared HTTP

    private static HttpRequestMessage Post(string url, HttpContent content) => new(HttpMethod.Post, url) { Content = content };

    private static StringContent Json(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    /// <summary>Sends a request built afresh per attempt, retrying network errors, 429 and 5xx answers with exponential
    /// backoff. The token is added only for the endpoint's own origin.</summary>
    private async Task<HttpResponseMessage> SendWithRetryAsync(Func<HttpRequestMessage> create, bool authorize, CancellationToken cancellationToken,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead, bool retryUnreachable = true)
    {
        for (var attempt = 1; ; attempt++)
        {
            using var request = create();
            if (authorize && Options.Token is { } token && SameOrigin(request.RequestUri!))
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, completion, cancellationToken);
            }
            catch (HttpRequestException e) when (attempt < Options.MaxAttempts && !cancellationToken.IsCancellationRequested
                                                 && (retryUnreachable || e.HttpRequestError is not (HttpRequestError.NameResolutionError or HttpRequestError.ConnectionError)))
            {
                Options.Logger.LogWarning("{Method} {Url} failed ({Error}); retrying", request.Method, request.RequestUri, e.Message);
                await Task.Delay(Backoff(attempt), cancellationToken);
                continue;
            }
            if (((int)response.StatusCode >= 500 || response.StatusCode == HttpStatusCode.TooManyRequests) && attempt < Options.MaxAttempts)
            {
                Options.Logger.LogWarning("{Method} {Url} answered HTTP {Status}; retrying", request.Method, request.RequestUri, (int)response.StatusCode);
                response.Dispose();
                await Task.Delay(Backoff(attempt), cancellationToken);
                continue;
            }
            return response;
        }
    }

    private TimeSpan Backoff(int attempt) => Options.RetryDelay * Math.Pow(2, attempt - 1);

    private bool SameOrigin(Uri uri) =>
        uri.Scheme == _endpoint.Scheme && string.Equals(uri.Host, _endpoint.Host, StringComparison.OrdinalIgnoreCase) && uri.Port == _endpoint.Port;

    private async Task<JsonObject> ReadJson(HttpResponseMessage response, string what, string repository, CancellationToken cancellationToken)
    {
        await EnsureSuccess(response, what, repository, null, null, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        try
        {
            return JsonNode.Parse(text) as JsonObject ?? throw new HubException($"Hub {what}: expected a JSON object, got: {Truncate(text)}");
        }
        catch (JsonException)
        {
            throw new HubException($"Hub {what}: the answer is not JSON: {Truncate(text)}");
        }
    }

    /// <summary>Turns a failed answer into an error that says what to do, as huggingface_hub's hf_raise_for_status reads
    /// the Hub's <c>X-Error-Code</c>: RepoNotFound (404, or 401 without a token), RevisionNotFound, EntryNotFound,
    /// GatedRepo (401/403).</summary>
    private async Task EnsureSuccess(HttpResponseMessage response, string what, string? repoId, string? revision, string? file,
        CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
            return;
        var status = (int)response.StatusCode;
        var code = Header(response, "X-Error-Code");
        var body = response.RequestMessage?.Method == HttpMethod.Head ? "" : Truncate(await response.Content.ReadAsStringAsync(cancellationToken));
        var detail = $"(HTTP {status} {response.ReasonPhrase} from {response.RequestMessage?.RequestUri}{(body.Length > 0 ? ": " + body : "")})";
        var tokenHint = Options.Token is null ? "set HF_TOKEN to a token of an account with access" : "the token in use has no access to it";
        throw (status, code) switch
        {
            (_, "GatedRepo") or (403, _) =>
                new HubAccessDeniedException($"{repoId ?? "the repository"} on {Endpoint} is gated or private: accept its terms at {Endpoint}/{repoId} " +
                                             $"and {tokenHint} {detail}"),
            (_, "RevisionNotFound") => new HubNotFoundException($"revision {revision} not found in {repoId} on {Endpoint} {detail}"),
            (_, "EntryNotFound") => new HubNotFoundException($"file {file} not found in {repoId}{(revision is null ? "" : "@" + revision)} on {Endpoint} {detail}"),
            (401, not "RepoNotFound") when Options.Token is not null =>
                new HubAccessDeniedException($"{Endpoint} refused the token for {repoId ?? what} {detail}"),
            (401, _) or (404, "RepoNotFound") =>
                new HubNotFoundException($"repository {repoId} not found on {Endpoint}{(Options.Token is null ? " (if it is private or gated, set HF_TOKEN)" : "")} {detail}"),
            (404, _) => new HubNotFoundException($"Hub {what} failed: not found {detail}"),
            _ => new HubException($"Hub {what} failed {detail}"),
        };
    }

    private static string Abbreviate(IReadOnlyList<string> files) =>
        files.Count == 0 ? "no files" : string.Join(", ", files.Take(20)) + (files.Count > 20 ? $" and {files.Count - 20} more" : "");

    private static string Truncate(string text) => text.Length > 300 ? text[..300] + "..." : text;

    public void Dispose() => _http.Dispose();
}
