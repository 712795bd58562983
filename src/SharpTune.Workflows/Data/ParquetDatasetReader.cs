using System.Globalization;
using Parquet;
using Parquet.Schema;
using SharpTune.Data;

namespace SharpTune.Workflows.Data;

/// <summary>Reads Parquet files (Parquet.Net) for <see cref="DatasetLoader"/>: flat columns, one row origin per row.</summary>
public static class ParquetDatasetReader
{
    /// <summary>Every column of every row group, as text (numbers in the invariant culture, booleans as true/false).</summary>
    public static LoadedDataset Read(string path) => ReadAsync(path).GetAwaiter().GetResult();

    private static async Task<LoadedDataset> ReadAsync(string path)
    {
        await using var reader = await ParquetReader.CreateAsync(path);
        var fields = reader.Schema.GetDataFields();
        var columns = fields.Select(_ => new List<string?>()).ToArray();
        for (var group = 0; group < reader.RowGroupCount; group++)
        {
            using var rowGroup = reader.OpenRowGroupReader(group);
            for (var f = 0; f < fields.Length; f++)
                columns[f].AddRange(await ReadColumn(rowGroup, fields[f], (int)rowGroup.RowCount, path));
        }
        var rows = columns.Length == 0 ? 0 : columns[0].Count;
        // Parquet has no lines; the origin names the row (1-based) instead.
        var origins = Enumerable.Range(1, rows).Select(i => new RowOrigin($"{path} row", i)).ToList();
        return new LoadedDataset(new Dataset(fields.Select(f => f.Name).ToList(), columns.Select(c => c.ToArray()).ToList(), origins), []);
    }

    private static async Task<IEnumerable<string?>> ReadColumn(ParquetRowGroupReader rowGroup, DataField field, int rows, string path)
    {
        if (field.IsArray)
            throw new InvalidDataException($"{path}: column '{field.Name}' is a list; only flat columns can be read");
        var type = Nullable.GetUnderlyingType(field.ClrType) ?? field.ClrType;
        // Parquet.Net 6 describes UTF-8 columns as ReadOnlyMemory<char>; they read as strings.
        if (type == typeof(string) || type == typeof(ReadOnlyMemory<char>))
        {
            var values = new string?[rows];
            await rowGroup.ReadAsync(field, values.AsMemory());
            return values;
        }
        return type switch
        {
            _ when type == typeof(int) => await Read<int>(),
            _ when type == typeof(long) => await Read<long>(),
            _ when type == typeof(short) => await Read<short>(),
            _ when type == typeof(byte) => await Read<byte>(),
            _ when type == typeof(sbyte) => await Read<sbyte>(),
            _ when type == typeof(float) => await Read<float>(),
            _ when type == typeof(double) => await Read<double>(),
            _ when type == typeof(bool) => await Read<bool>(),
            _ when type == typeof(decimal) => await Read<decimal>(),
            _ => throw new InvalidDataException($"{path}: column '{field.Name}' has type {type.Name}, which is not read as text"),
        };

        async Task<IEnumerable<string?>> Read<T>() where T : struct
        {
            var values = new T?[rows];
            await rowGroup.ReadAsync(field, values.AsMemory());
            return values.Select(v => v is { } value
                ? value is bool flag ? (flag ? "true" : "false") : Convert.ToString(value, CultureInfo.InvariantCulture)
                : null);
        }
    }
}
