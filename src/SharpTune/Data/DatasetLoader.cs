using System.Globalization;
using System.Text;
using System.Text.Json;
using CsvHelper;

namespace SharpTune.Data;

/// <summary>File formats <see cref="DatasetLoader"/> reads.</summary>
public enum DatasetFormat
{
    /// <summary>From the extension: .csv, .tsv/.tab, .jsonl/.ndjson, .parquet; a .txt or extension-less file is sniffed;
    /// other extensions are refused rather than guessed.</summary>
    Auto,
    Csv,
    Tsv,
    JsonLines,
    Parquet,
}

/// <summary>How to read a data file.</summary>
public sealed record DatasetLoadOptions
{
    public DatasetFormat Format { get; init; } = DatasetFormat.Auto;
    /// <summary>Whether the first row of a CSV/TSV names the columns; null detects it (see <see cref="DatasetLoader"/>).</summary>
    public bool? HasHeader { get; init; }
    /// <summary>Column names the caller will ask for; a first row holding them all is a header.</summary>
    public IReadOnlyList<string> ExpectedColumns { get; init; } = [];
    /// <summary>Skip malformed rows (reported in <see cref="LoadedDataset.BadRows"/>) instead of stopping.</summary>
    public bool SkipBadRows { get; init; }
}

/// <summary>A row that could not be used, with the reason.</summary>
public sealed record BadRow(RowOrigin Origin, string Reason)
{
    public override string ToString() => $"{Origin}: {Reason}";
}

/// <summary>Thrown when rows are malformed and the user did not ask to skip them; lists the first few.</summary>
public sealed class BadRowsException(IReadOnlyList<BadRow> rows, string hint)
    : Exception(Describe(rows, hint))
{
    public IReadOnlyList<BadRow> Rows { get; } = rows;

    private static string Describe(IReadOnlyList<BadRow> rows, string hint) =>
        $"{rows.Count} bad row(s): {string.Join("; ", rows.Take(5))}{(rows.Count > 5 ? "; ..." : "")}. {hint}";
}

/// <summary>A dataset and the rows skipped while reading it.</summary>
public sealed record LoadedDataset(Dataset Dataset, IReadOnlyList<BadRow> BadRows);

/// <summary>Reads CSV (CsvHelper: RFC 4180 quoting, embedded newlines), TSV (quoted fields, no embedded newlines), JSON Lines and Parquet (with SharpTune.Workflows, see <see cref="UseParquetReader"/>) into
/// a <see cref="Dataset"/> of strings. UTF-8 with or without BOM. Without an explicit choice a CSV/TSV's first row is
/// a header when it holds all expected column names, or else unless it looks like data (a numeric, empty or long
/// field, or repeated values).</summary>
public static class DatasetLoader
{
    public static Dataset Load(string path, DatasetLoadOptions? options = null) => LoadWithReport(path, options).Dataset;

    public static LoadedDataset LoadWithReport(string path, DatasetLoadOptions? options = null)
    {
        options ??= new DatasetLoadOptions();
        if (!File.Exists(path))
            throw new FileNotFoundException("data file not found", path);
        var format = options.Format == DatasetFormat.Auto ? DetectFormat(path) : options.Format;
        if (format != DatasetFormat.Parquet)
            TextFiles.EnsureUtf8(path);
        return format switch
        {
            DatasetFormat.Csv => ReadDelimited(path, ',', options),
            DatasetFormat.Tsv => ReadDelimited(path, '\t', options),
            DatasetFormat.JsonLines => ReadJsonLines(path, options),
            DatasetFormat.Parquet => ReadParquet(path),
            _ => throw new ArgumentException($"unsupported format {format} for {path}"),
        };
    }

    /// <summary>Extensions read without being told the format.</summary>
    public const string KnownExtensions = ".csv, .tsv, .tab, .jsonl, .ndjson, .parquet, .pq (or .txt / no extension, sniffed)";

    public static DatasetFormat DetectFormat(string path)
    {
        switch (Path.GetExtension(path).ToLowerInvariant())
        {
            case ".csv": return DatasetFormat.Csv;
            case ".tsv" or ".tab": return DatasetFormat.Tsv;
            case ".jsonl" or ".ndjson": return DatasetFormat.JsonLines;
            case ".parquet" or ".pq": return DatasetFormat.Parquet;
            case ".txt" or "": break;
            case var other: throw new InvalidDataException($"{path}: unknown data file extension '{other}'; use one of {KnownExtensions}");
        }
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        var first = reader.ReadLine() ?? "";
        if (first.TrimStart().StartsWith('{'))
            return DatasetFormat.JsonLines;
        return first.Count(c => c == '\t') >= first.Count(c => c == ',') && first.Contains('\t') ? DatasetFormat.Tsv : DatasetFormat.Csv;
    }

    private static LoadedDataset ReadDelimited(string path, char delimiter, DatasetLoadOptions options)
    {
        var records = new List<(string[] Fields, long Line)>();
        // A quoted field never closed swallows every line after it (pandas: "EOF inside string"): always an error.
        CsvMalformedRecord? unterminated = null;
        var csv = new CsvReaderOptions
        {
            OnMalformedRecord = record => unterminated ??= record.Reason == CsvMalformedReason.UnterminatedQuote ? record : null,
            Separator = delimiter,
            HasHeader = false,
            TrackLineNumbers = true,
            // Quotes inside an unquoted field, or text after a closing quote, are kept as written (as pandas does).
            MalformedData = CsvMalformedDataHandling.Recover,
            FieldCountMismatch = CsvFieldCountHandling.Allow,
            SkipEmptyLines = true,
            // TSV fields cannot hold line breaks (IANA text/tab-separated-values); refusing them there keeps one
            // unbalanced quote in a message (SMS Spam has three) from swallowing the lines after it.
            AllowLineBreaksInQuotes = delimiter != '\t',
        };
        using (var reader = CsvReader.FromFile(path, csv))
            while (reader.Read())
                records.Add((reader.Current.ToArray(), reader.LineNumber));
        if (unterminated is not null)
            throw new InvalidDataException($"{path}:{unterminated.Value.LineNumber}: a quoted field opened here is never closed (EOF inside string); " +
                                           "the rest of the file would be read as one field. Close the quote or escape it by doubling (\"\")");
        if (records.Count == 0)
            throw new InvalidDataException($"{path} holds no rows");

        var hasHeader = options.HasHeader ?? LooksLikeHeader(records, options.ExpectedColumns);
        var names = hasHeader
            ? records[0].Fields.Select((n, i) => string.IsNullOrWhiteSpace(n) ? $"column{i}" : n.Trim()).ToArray()
            : Enumerable.Range(0, records[0].Fields.Length).Select(i => $"column{i}").ToArray();
        if (names.Distinct(StringComparer.Ordinal).Count() != names.Length)
            throw new InvalidDataException($"{path}:{records[0].Line}: duplicate column names in the header ({string.Join(", ", names)})");

        var bad = new List<BadRow>();
        var rows = new List<(string[] Fields, long Line)>();
        foreach (var record in records.Skip(hasHeader ? 1 : 0))
        {
            if (record.Fields.Length != names.Length)
            {
                bad.Add(new BadRow(new RowOrigin(path, record.Line), $"{record.Fields.Length} fields, expected {names.Length}"));
                continue;
            }
            rows.Add(record);
        }
        if (bad.Count > 0 && !options.SkipBadRows)
            throw new BadRowsException(bad, "Fix the file, or skip bad rows (--skip-bad-rows).");
        var columns = names.Select((_, c) => rows.Select(r => (string?)r.Fields[c]).ToArray()).ToList();
        return new LoadedDataset(new Dataset(names, columns, rows.Select(r => new RowOrigin(path, r.Line)).ToList()), bad);
    }

    private static bool LooksLikeHeader(List<(string[] Fields, long Line)> records, IReadOnlyList<string> expected)
    {
        var first = records[0].Fields.Select(f => f.Trim()).ToArray();
        if (expected.Count > 0 && expected.All(e => first.Contains(e, StringComparer.Ordinal)))
            return true;
        // Like pandas, a header unless the first row looks like data: a number, an empty or long field, or repeated names.
        return !first.Any(f => f.Length == 0 || f.Length > 64 || IsNumber(f)) && first.Distinct().Count() == first.Length;
    }

    private static bool IsNumber(string text) => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    private static LoadedDataset ReadJsonLines(string path, DatasetLoadOptions options)
    {
        var names = new List<string>();
        var rows = new List<(Dictionary<string, string?> Values, long Line)>();
        var bad = new List<BadRow>();
        long lineNumber = 0;
        foreach (var line in File.ReadLines(path, Encoding.UTF8))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            try
            {
                using var document = JsonDocument.Parse(line);
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                    throw new JsonException($"a JSON Lines row must be an object, not {document.RootElement.ValueKind.ToString().ToLowerInvariant()}");
                var values = new Dictionary<string, string?>(StringComparer.Ordinal);
                foreach (var property in document.RootElement.EnumerateObject())
                {
                    if (!values.ContainsKey(property.Name) && !names.Contains(property.Name))
                        names.Add(property.Name);
                    values[property.Name] = property.Value.ValueKind switch
                    {
                        JsonValueKind.String => property.Value.GetString(),
                        JsonValueKind.Null => null,
                        JsonValueKind.True => "true",
                        JsonValueKind.False => "false",
                        _ => property.Value.GetRawText(),
                    };
                }
                rows.Add((values, lineNumber));
            }
            catch (JsonException exception)
            {
                bad.Add(new BadRow(new RowOrigin(path, lineNumber), exception.Message.StartsWith("a JSON Lines row", StringComparison.Ordinal)
                    ? exception.Message : $"invalid JSON ({exception.Message.Split('.')[0]})"));
            }
        }
        if (bad.Count > 0 && !options.SkipBadRows)
            throw new BadRowsException(bad, "Fix the file, or skip bad rows (--skip-bad-rows).");
        if (rows.Count == 0)
            throw new InvalidDataException($"{path} holds no rows");
        var columns = names.Select(n => rows.Select(r => r.Values.GetValueOrDefault(n)).ToArray()).ToList();
        return new LoadedDataset(new Dataset(names, columns, rows.Select(r => new RowOrigin(path, r.Line)).ToList()), bad);
    }

    private static Func<string, LoadedDataset>? _parquetReader;

    /// <summary>Installs the Parquet reader (<c>SharpTuneWorkflows.Register()</c> from the SharpTune.Workflows package does):
    /// the core library reads CSV, TSV and JSON Lines itself and leaves Parquet's dependencies to the apps that need them.</summary>
    public static void UseParquetReader(Func<string, LoadedDataset> reader) => Volatile.Write(ref _parquetReader, reader);

    private static LoadedDataset ReadParquet(string path)
    {
        var reader = Volatile.Read(ref _parquetReader) ?? throw new NotSupportedException(
            $"{path}: reading Parquet needs the SharpTune.Workflows package; reference it and call SharpTuneWorkflows.Register() once at start-up (the sharptune CLI does)");
        try
        {
            return reader(path);
        }
        catch (Exception exception) when (exception is not (InvalidDataException or OutOfMemoryException))
        {
            // Parquet.Net's own text (a corrupt footer, a bad magic number) without its type or stack, and the file named.
            throw new InvalidDataException($"{path}: not a readable Parquet file ({exception.Message.ReplaceLineEndings(" ")})", exception);
        }
    }
}
